//! Who is asking: maps a request to exactly one agency of the directory, or refuses it
//! with `401 unauthenticated`.
//!
//! Two credentials, either or both:
//! - a **TLS client certificate**: the handshake already checked that its path is trusted
//!   for TLS client authentication ([`crate::hub::server`]'s verifier); here
//!   [`Directory::authenticate_client`] checks the path again at the request's `now` (the
//!   connection may outlive the certificate, the CRLs may have been reloaded) and finds the
//!   one agency whose `clients` rule admits it;
//! - an **`Authorization: Bearer <token>`** header: [`Directory::token_agency`] compares the
//!   token's SHA-256 with the hashes in the directory.
//!
//! Every credential presented must authenticate, and when both are presented they must name
//! the same agency: a request never gets the better of two credentials. Pure: the peer's
//! certificates, the header, the directory, the trust store and `now` are arguments. Details
//! never echo the token.

use http::HeaderValue;
use jiff::Timestamp;

use super::problem::Problem;
use crate::directory::{ClientError, Directory};
use crate::pki::{Certificate, TrustStore};

/// How a request authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A TLS client certificate, by SHA-256 fingerprint (hex).
    ClientCertificate(String),
    /// A bearer token.
    BearerToken,
    /// Both, naming the same agency.
    Both(String),
}

/// An authenticated agency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The agency identifier.
    pub agency: String,
    /// With what.
    pub credential: Credential,
}

/// Maps a request to its agency: `peer` is the TLS client's chain as sent (leaf first;
/// empty for anonymous TLS), `authorization` the `Authorization` header if any.
pub fn authenticate(
    directory: &Directory,
    trust: &TrustStore,
    peer: &[Certificate],
    authorization: Option<&HeaderValue>,
    now: Timestamp,
) -> Result<Authenticated, Problem> {
    let by_cert = if peer.is_empty() {
        None
    } else {
        match directory.authenticate_client(trust, peer, now) {
            Ok((agency, _)) => Some((agency.id.to_string(), peer[0].fingerprint.clone())),
            Err(e) => {
                let detail = match e {
                    ClientError::Untrusted(why) => {
                        format!("the client certificate is not trusted: {why}")
                    }
                    ClientError::NoAgency(cert) => {
                        format!("the client certificate {cert} belongs to no agency")
                    }
                    ClientError::Ambiguous { cert, agencies } => format!(
                        "the client certificate {cert} matches several agencies ({}); \
                         the directory must be fixed",
                        agencies.join(", ")
                    ),
                };
                return Err(Problem::unauthenticated(detail));
            }
        }
    };
    let by_token = match authorization {
        None => None,
        Some(value) => {
            let token = bearer_token(value)?;
            match directory.token_agency(token) {
                Some(agency) => Some(agency.id.to_string()),
                None => {
                    return Err(Problem::unauthenticated(
                        "the bearer token is not valid for any agency",
                    ));
                }
            }
        }
    };
    match (by_cert, by_token) {
        (Some((a, fp)), None) => Ok(Authenticated {
            agency: a,
            credential: Credential::ClientCertificate(fp),
        }),
        (None, Some(a)) => Ok(Authenticated {
            agency: a,
            credential: Credential::BearerToken,
        }),
        (Some((a, fp)), Some(b)) if a == b => Ok(Authenticated {
            agency: a,
            credential: Credential::Both(fp),
        }),
        (Some((a, _)), Some(b)) => Err(Problem::unauthenticated(format!(
            "the client certificate authenticates {a} but the bearer token {b}"
        ))),
        (None, None) => Err(Problem::unauthenticated(
            "no credentials: present an agency's TLS client certificate or an \
             `Authorization: Bearer <token>` header",
        )),
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive,
/// RFC 6750 token68 characters).
fn bearer_token(value: &HeaderValue) -> Result<&str, Problem> {
    let malformed =
        || Problem::unauthenticated("malformed Authorization header: expected `Bearer <token>`");
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Problem::unauthenticated(format!(
            "unsupported authorization scheme {scheme:?}: use `Bearer <token>`"
        )));
    }
    let token = token.trim();
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if token.is_empty() || !token.bytes().all(token68) {
        return Err(malformed());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::hub::problem::Code;

    fn pki(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("certs-test")
            .join(rel)
    }

    fn setup() -> (Directory, TrustStore) {
        let dir = Directory::load(&pki("directory.toml")).unwrap();
        let trust = TrustStore::new(
            Certificate::load(&pki("root-ca.pem")).unwrap(),
            Certificate::load(&pki("intermediate-ca.pem")).unwrap(),
        );
        (dir, trust)
    }

    fn now() -> Timestamp {
        "2026-11-23T00:00:00Z".parse().unwrap()
    }

    fn token(id: &str) -> String {
        std::fs::read_to_string(pki(&format!("agencies/{id}/token")))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn bearer(t: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap()
    }

    fn client(id: &str) -> Vec<Certificate> {
        Certificate::load(&pki(&format!("agencies/{id}/client.pem"))).unwrap()
    }

    #[test]
    fn a_bearer_token_or_a_client_certificate_names_the_agency() {
        let (dir, trust) = setup();
        for id in [
            "000.00.00.G12",
            "000.00.00.H29",
            "000.00.00.H41",
            "000.00.00.G22",
        ] {
            let a = authenticate(&dir, &trust, &[], Some(&bearer(&token(id))), now()).unwrap();
            assert_eq!(a.agency, id);
            assert_eq!(a.credential, Credential::BearerToken);
            let chain = client(id);
            let a = authenticate(&dir, &trust, &chain, None, now()).unwrap();
            assert_eq!(a.agency, id);
            assert_eq!(
                a.credential,
                Credential::ClientCertificate(chain[0].fingerprint.clone())
            );
            let a = authenticate(&dir, &trust, &chain, Some(&bearer(&token(id))), now()).unwrap();
            assert!(matches!(a.credential, Credential::Both(_)));
        }
        let lower = HeaderValue::from_str(&format!("bearer {}", token("000.00.00.G12"))).unwrap();
        assert!(authenticate(&dir, &trust, &[], Some(&lower), now()).is_ok());
    }

    #[test]
    fn missing_wrong_and_conflicting_credentials_are_unauthenticated() {
        let (dir, trust) = setup();
        let refused = |peer: &[Certificate], h: Option<HeaderValue>, expect: &str| {
            let p = authenticate(&dir, &trust, peer, h.as_ref(), now()).unwrap_err();
            assert_eq!(p.code, Code::Unauthenticated);
            assert_eq!(p.status(), http::StatusCode::UNAUTHORIZED);
            assert!(p.detail.contains(expect), "{expect}: {}", p.detail);
            assert!(!p.detail.contains(&token("000.00.00.G12")));
            assert_eq!(p.headers[0].0, http::header::WWW_AUTHENTICATE);
        };
        refused(&[], None, "no credentials");
        refused(&[], Some(bearer("0000")), "not valid for any agency");
        refused(&[], Some(bearer("")), "malformed");
        refused(&[], Some(HeaderValue::from_static("Bearer")), "malformed");
        refused(&[], Some(bearer("a b")), "malformed");
        refused(
            &[],
            Some(HeaderValue::from_static("Basic dXNlcjpwYXNz")),
            "unsupported authorization scheme",
        );
        refused(
            &client("000.00.00.G12"),
            Some(bearer(&token("000.00.00.H29"))),
            "authenticates 000.00.00.G12 but the bearer token 000.00.00.H29",
        );
        // A valid token does not rescue a bad certificate.
        let unknown = Certificate::load(&pki("bad/unknown-issuer.pem")).unwrap();
        refused(
            &unknown,
            Some(bearer(&token("000.00.00.G12"))),
            "not trusted",
        );
        // A trusted certificate of no agency (the hub's receipt certificate).
        let receipt = Certificate::load(&pki("hub/receipt.pem")).unwrap();
        refused(&receipt, None, "belongs to no agency");
        // The request's `now` decides, not the handshake's.
        let later: Timestamp = "2036-06-01T00:00:00Z".parse().unwrap();
        let p = authenticate(&dir, &trust, &client("000.00.00.G12"), None, later).unwrap_err();
        assert!(p.detail.contains("expired"), "{}", p.detail);
    }
}
