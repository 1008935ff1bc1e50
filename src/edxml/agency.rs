//! Agency identifiers (mã định danh), validated once and carried as a newtype.
//!
//! Two official forms exist and both are accepted in strict mode:
//! - QCVN 102:2016: `DDD.DD.DD.LDD`, e.g. `000.00.00.G22`, read right to left.
//! - Decision 20/2020/QĐ-TTg: at most 35 characters, `[A-Y][0-9]{2}(\.[0-9A-Z]+)*`, e.g.
//!   `G09.20`, read left to right.
//!
//! Real traffic also carries codes of neither form (`01.02.G22`, `999.010.01.H22`, a VXP
//! system id, the literal `null`). [`AgencyId::parse_lenient`] accepts those as
//! [`AgencyIdForm::Nonstandard`] so that lenient mode can route them; nothing truc emits uses
//! that form.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Longest Decision 20/2020 identifier.
pub const MAX_QD20_LEN: usize = 35;
/// Longest identifier accepted in lenient mode.
pub const MAX_NONSTANDARD_LEN: usize = 50;

/// A syntactically valid agency identifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyId {
    id: String,
    form: AgencyIdForm,
}

/// Which grammar an [`AgencyId`] matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgencyIdForm {
    /// `DDD.DD.DD.LDD` (QCVN 102:2016).
    Qcvn102,
    /// `[A-Y][0-9]{2}(\.[0-9A-Z]+)*`, ≤ 35 characters (Decision 20/2020).
    Qd20,
    /// Neither official form; accepted only by [`AgencyId::parse_lenient`].
    Nonstandard,
}

/// The string is not an agency identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an agency identifier ({reason})")]
pub struct InvalidAgencyId {
    /// The rejected value.
    pub value: String,
    /// Why.
    pub reason: &'static str,
}

impl AgencyId {
    /// Parses an identifier in one of the two official forms.
    pub fn parse(s: &str) -> Result<Self, InvalidAgencyId> {
        let form = if is_qcvn102(s) {
            AgencyIdForm::Qcvn102
        } else if is_qd20(s) {
            AgencyIdForm::Qd20
        } else {
            return Err(InvalidAgencyId {
                value: s.to_owned(),
                reason: "expected DDD.DD.DD.LDD (QCVN 102) or [A-Y]NN(.GROUP)* of at most 35 characters (QĐ 20/2020)",
            });
        };
        Ok(Self {
            id: s.to_owned(),
            form,
        })
    }

    /// Parses an official identifier, or failing that any code made of letters, digits, `.`,
    /// `-` and `_` of at most 50 characters (marked [`AgencyIdForm::Nonstandard`]).
    pub fn parse_lenient(s: &str) -> Result<Self, InvalidAgencyId> {
        if let Ok(id) = Self::parse(s) {
            return Ok(id);
        }
        if s.is_empty() || s.len() > MAX_NONSTANDARD_LEN {
            return Err(InvalidAgencyId {
                value: s.to_owned(),
                reason: "empty or longer than 50 characters",
            });
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(InvalidAgencyId {
                value: s.to_owned(),
                reason: "only letters, digits, '.', '-' and '_' are allowed",
            });
        }
        Ok(Self {
            id: s.to_owned(),
            form: AgencyIdForm::Nonstandard,
        })
    }

    /// The identifier as written.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Which grammar it matched.
    pub fn form(&self) -> AgencyIdForm {
        self.form
    }

    /// The level-1 unit code (`G22` in `000.00.00.G22` and in `G22.01`); `None` for
    /// nonstandard identifiers.
    pub fn level1(&self) -> Option<&str> {
        match self.form {
            AgencyIdForm::Qcvn102 => self.id.get(10..13),
            AgencyIdForm::Qd20 => self.id.get(0..3),
            AgencyIdForm::Nonstandard => None,
        }
    }
}

fn is_qcvn102(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 13
        && b[..3].iter().all(u8::is_ascii_digit)
        && b[3] == b'.'
        && b[4..6].iter().all(u8::is_ascii_digit)
        && b[6] == b'.'
        && b[7..9].iter().all(u8::is_ascii_digit)
        && b[9] == b'.'
        && b[10].is_ascii_uppercase()
        && b[11..13].iter().all(u8::is_ascii_digit)
}

fn is_qd20(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 3 || b.len() > MAX_QD20_LEN {
        return false;
    }
    if !(b'A'..=b'Y').contains(&b[0]) || !b[1].is_ascii_digit() || !b[2].is_ascii_digit() {
        return false;
    }
    let rest = &s[3..];
    if rest.is_empty() {
        return true;
    }
    let Some(groups) = rest.strip_prefix('.') else {
        return false;
    };
    groups.split('.').all(|g| {
        !g.is_empty()
            && g.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    })
}

impl FromStr for AgencyId {
    type Err = InvalidAgencyId;

    /// Strict parsing: see [`AgencyId::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl Serialize for AgencyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_official_forms() {
        for (s, form, l1) in [
            ("000.00.00.G22", AgencyIdForm::Qcvn102, "G22"),
            ("000.00.18.G12", AgencyIdForm::Qcvn102, "G12"),
            ("G09.20", AgencyIdForm::Qd20, "G09"),
            ("H37.DN.001", AgencyIdForm::Qd20, "H37"),
            ("G22", AgencyIdForm::Qd20, "G22"),
        ] {
            let id = AgencyId::parse(s).unwrap();
            assert_eq!(id.form(), form, "{s}");
            assert_eq!(id.level1(), Some(l1), "{s}");
            assert_eq!(id.to_string(), s);
        }
    }

    #[test]
    fn refuses_dirty_codes_in_strict_mode() {
        for s in [
            "01.02.G22",
            "28.22.H17",
            "999.010.01.H22",
            "vxp.saas.03",
            "null",
            "",
            "000.00.00.g22",
            "Z01",
            "G1",
            "G22.",
            "G22..1",
            "G22.ab",
            " 000.00.00.G22",
            &format!("G22.{}", "1".repeat(32)),
        ] {
            assert!(AgencyId::parse(s).is_err(), "{s:?} should be refused");
        }
        // 35 characters is the longest QĐ 20 code.
        assert!(AgencyId::parse(&format!("G22.{}", "1".repeat(31))).is_ok());
    }

    #[test]
    fn lenient_accepts_field_codes_but_not_garbage() {
        for s in ["01.02.G22", "999.010.01.H22", "vxp.saas.03", "null"] {
            let id = AgencyId::parse_lenient(s).unwrap();
            assert_eq!(id.form(), AgencyIdForm::Nonstandard);
            assert_eq!(id.level1(), None);
        }
        assert_eq!(
            AgencyId::parse_lenient("000.00.00.G22").unwrap().form(),
            AgencyIdForm::Qcvn102
        );
        for s in ["", "a b", "<x>", &"1".repeat(51)] {
            assert!(AgencyId::parse_lenient(s).is_err(), "{s:?}");
        }
    }
}
