//! The parameters of an authenticated VXP request and the rules for reading them (VXP.md §3).
//!
//! The SDK keeps one parameter map per service object and never removes anything from it, so
//! every request carries the parameters of all earlier calls of that object: `docId` and
//! `filePath` after a getEdoc, `status` after an updateStatus, `level` after a
//! getAgenciesListQD20, and so on. [`Params`] therefore only answers questions; an operation
//! reads the few parameters it defines (§6) and ignores everything else, stale or not.
//!
//! # Invariants
//! - The parameters are exactly the members of the signed JSON ([`Signed::params`]), prefix
//!   stripped, in the order received. That order is Java `HashMap` order, which nothing may
//!   depend on; it only decides between names that differ in case (below).
//! - [`Params::get`] matches the name exactly. [`Params::get_any_case`] prefers the exact name
//!   and otherwise takes the first name equal to it ignoring ASCII case.
//! - The document id follows the rule of §3 that is right for every known client (Bkav sends
//!   both `docId` and `docid`, the older one stale): [`Params::doc_id_for_get`] for getEdoc,
//!   getSentEdocList and downloadEdoc; [`Params::doc_id_for_update`] for updateStatus.
//! - A present parameter with an empty value is present: it is returned as `""`, not skipped.
//!
//! Pure; values are returned as sent, neither trimmed nor checked (a docId is checked where it
//! is used, e.g. for being path-safe).

use super::auth::Signed;

/// The parameters of one request, in the order received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Wraps `(name, value)` pairs (names without the `XroadVnpt-` prefix).
    pub fn new(params: Vec<(String, String)>) -> Self {
        Self(params)
    }

    /// The value of the parameter named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` exactly if present, else of the first parameter whose name equals
    /// `name` ignoring ASCII case.
    pub fn get_any_case(&self, name: &str) -> Option<&str> {
        self.get(name).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
    }

    /// The document id for getEdoc, getSentEdocList and downloadEdoc: `docId`, then any case.
    pub fn doc_id_for_get(&self) -> Option<&str> {
        self.get_any_case("docId")
    }

    /// The document id for updateStatus: `docid`, then `docId`, then any case.
    pub fn doc_id_for_update(&self) -> Option<&str> {
        self.get("docid").or_else(|| self.get_any_case("docId"))
    }

    /// `messagetype` (`edoc` or `status`): the filter of getReceivedEdocList, the kind of
    /// package on sendEdoc. Exact name, then any case.
    pub fn messagetype(&self) -> Option<&str> {
        self.get_any_case("messagetype")
    }

    /// `servicetype` (`eDoc` in every client). Exact name, then any case.
    pub fn servicetype(&self) -> Option<&str> {
        self.get_any_case("servicetype")
    }

    /// `status`: the new status of updateStatus (`done`, `fail`, `processing`, …). Stale on
    /// every other operation. Exact name, then any case.
    pub fn status(&self) -> Option<&str> {
        self.get_any_case("status")
    }

    /// `hash-file`: the SDK's unpadded hex SHA-256 of the sendEdoc package (§6.4). Exact
    /// name, then any case.
    pub fn hash_file(&self) -> Option<&str> {
        self.get_any_case("hash-file")
    }

    /// `from`: the sender's agency code on sendEdoc. Exact name, then any case.
    ///
    /// Named `sender`, not `from`: an inherent `from` method would shadow [`From::from`] in
    /// `Params::from(…)`.
    pub fn sender(&self) -> Option<&str> {
        self.get_any_case("from")
    }

    /// `to` on sendEdoc, as the **JSON text** of the caller's value (an array arrives as
    /// `["…"]`, a string with its quotes). Exact name, then any case.
    pub fn to(&self) -> Option<&str> {
        self.get_any_case("to")
    }

    /// `level` of getAgenciesListQD20 (stale on every other operation). Exact name, then any
    /// case.
    pub fn level(&self) -> Option<&str> {
        self.get_any_case("level")
    }

    /// `AgencyCode` of deleteAgency. Exact name, then any case.
    pub fn agency_code(&self) -> Option<&str> {
        self.get_any_case("AgencyCode")
    }

    /// Every parameter, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<(String, String)>> for Params {
    fn from(params: Vec<(String, String)>) -> Self {
        Self(params)
    }
}

impl From<Signed> for Params {
    fn from(signed: Signed) -> Self {
        Self(signed.params)
    }
}

impl From<&Signed> for Params {
    fn from(signed: &Signed) -> Self {
        Self(signed.params.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn both_doc_id_spellings_each_rule_picks_its_own() {
        // Bkav: getEdoc with docId, later updateStatus with docid; either may be stale.
        for p in [
            params(&[("docId", "get-id"), ("docid", "update-id")]),
            params(&[("docid", "update-id"), ("docId", "get-id")]),
        ] {
            assert_eq!(p.doc_id_for_get(), Some("get-id"));
            assert_eq!(p.doc_id_for_update(), Some("update-id"));
        }
    }

    #[test]
    fn one_doc_id_spelling_serves_both_rules() {
        let p = params(&[("docId", "a")]);
        assert_eq!(p.doc_id_for_get(), Some("a"));
        assert_eq!(p.doc_id_for_update(), Some("a"));
        let p = params(&[("docid", "b")]);
        assert_eq!(p.doc_id_for_get(), Some("b"));
        assert_eq!(p.doc_id_for_update(), Some("b"));
        let p = params(&[("DocID", "c")]);
        assert_eq!(p.doc_id_for_get(), Some("c"));
        assert_eq!(p.doc_id_for_update(), Some("c"));
        assert_eq!(params(&[("doc_id", "d")]).doc_id_for_get(), None);
    }

    #[test]
    fn update_prefers_docid_then_doc_id_then_any_case() {
        let p = params(&[("DOCID", "x"), ("docId", "y")]);
        assert_eq!(p.doc_id_for_update(), Some("y"));
        assert_eq!(p.doc_id_for_get(), Some("y"));
        let p = params(&[("DOCID", "x"), ("DocId", "z")]);
        assert_eq!(p.doc_id_for_update(), Some("x"), "first any-case match");
    }

    #[test]
    fn get_is_exact_and_get_any_case_prefers_exact() {
        let p = params(&[("MessageType", "status"), ("messagetype", "edoc")]);
        assert_eq!(p.get("messageType"), None);
        assert_eq!(p.get("MessageType"), Some("status"));
        assert_eq!(p.get_any_case("messagetype"), Some("edoc"));
        assert_eq!(p.get_any_case("MESSAGETYPE"), Some("status"));
        assert_eq!(p.messagetype(), Some("edoc"));
    }

    #[test]
    fn stale_parameters_are_present_and_ignored() {
        // An object that did getAgenciesListQD20, getEdoc and updateStatus, now listing.
        let p = params(&[
            ("systemid", "sys.a"),
            ("level", "1"),
            ("docId", "old"),
            ("filePath", "xml"),
            ("status", "done"),
            ("timestamp", "23112026T082505+0854"),
            ("servicetype", "eDoc"),
            ("messagetype", "edoc"),
            ("Content-Type", "application/json"),
        ]);
        assert_eq!(p.len(), 9);
        assert_eq!(p.get("filePath"), Some("xml"));
        assert_eq!(p.status(), Some("done"));
        assert_eq!(p.level(), Some("1"));
        // getReceivedEdocList reads only these; the rest changes nothing it sees.
        assert_eq!(p.messagetype(), Some("edoc"));
        assert_eq!(p.servicetype(), Some("eDoc"));
        assert_eq!(p.hash_file(), None);
        assert_eq!(p.sender(), None);
        assert_eq!(p.to(), None);
        assert_eq!(p.agency_code(), None);
    }

    #[test]
    fn send_edoc_parameters() {
        let p = params(&[
            ("from", "000.00.15.H51"),
            ("to", r#"["000.00.15.H52"]"#),
            ("hash-file", "8d55f6"),
            ("AgencyCode", ""),
        ]);
        assert_eq!(p.sender(), Some("000.00.15.H51"));
        assert_eq!(p.to(), Some(r#"["000.00.15.H52"]"#));
        assert_eq!(p.hash_file(), Some("8d55f6"));
        assert_eq!(p.agency_code(), Some(""), "empty is present");
    }

    #[test]
    fn built_from_a_signed_request_in_order() {
        let signed = Signed {
            system_id: "sys.a".into(),
            timestamp: "23112026T082505+0854".into(),
            params: vec![
                ("systemid".into(), "sys.a".into()),
                ("timestamp".into(), "23112026T082505+0854".into()),
            ],
        };
        let p = Params::from(&signed);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            [("systemid", "sys.a"), ("timestamp", "23112026T082505+0854")]
        );
        assert_eq!(Params::from(signed.params.clone()), p);
        assert_eq!(Params::from(signed), p);
        assert!(Params::default().is_empty());
    }
}
