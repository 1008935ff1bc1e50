//! Path validation and revocation over the committed test PKI (`certs-test/`, see its
//! README). Every decision is made at a fixed `now`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;

use super::*;
use crate::dsig::Legacy;

fn pki(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("certs-test")
        .join(rel)
}

/// The certificates in `certs-test/<rel>`: the end entity first, then its chain.
fn certs(rel: &str) -> Vec<Certificate> {
    Certificate::load(&pki(rel)).unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    at("2026-11-23T00:00:00Z")
}

fn store() -> TrustStore {
    TrustStore::new(certs("root-ca.pem"), Vec::new())
}

fn with_crls(paths: &[&str], policy: RevocationPolicy) -> TrustStore {
    let crls = CrlStore::open(paths.iter().map(|p| pki(p)).collect()).unwrap();
    store().with_revocation(Arc::new(crls), policy)
}

fn check(
    store: &TrustStore,
    rel: &str,
    purpose: Purpose,
    legacy: bool,
    now: Timestamp,
) -> Result<ValidPath, Untrusted> {
    let certs = certs(rel);
    store.validate(&certs[0], &certs[1..], purpose, legacy, now)
}

/// [`check`] for document signing under the default policy at [`now`].
fn signer(store: &TrustStore, rel: &str) -> Result<ValidPath, Untrusted> {
    signer_at(store, rel, now())
}

fn signer_at(store: &TrustStore, rel: &str, now: Timestamp) -> Result<ValidPath, Untrusted> {
    check(store, rel, Purpose::Signer, false, now)
}

fn code(r: Result<ValidPath, Untrusted>) -> &'static str {
    match r {
        Ok(_) => "trusted",
        Err(u) => u.code(),
    }
}

#[test]
fn agencies_hub_and_extra_signers_are_trusted() {
    let s = store();
    for rel in [
        "agencies/000.00.00.G12/sign.pem",
        "agencies/000.00.00.H29/sign.pem",
        "agencies/000.00.00.H41/sign.pem",
        "hub/receipt.pem",
        "signers/rsa4096.pem",
        "signers/p384.pem",
    ] {
        let path = signer(&s, rel).unwrap();
        assert_eq!(path.chain.len(), 3, "{rel}: leaf, intermediate, root");
        assert!(path.legacy.is_empty(), "{rel}");
        assert_eq!(path.chain[2].der(), s.anchors()[0].der(), "{rel}");
    }
}

#[test]
fn each_bad_certificate_gets_its_own_reason() {
    let s = store();
    for (rel, expected) in [
        ("bad/expired.pem", "certificate-expired"),
        ("bad/not-yet-valid.pem", "certificate-not-yet-valid"),
        ("bad/wrong-key-usage.pem", "key-usage"),
        ("bad/critical-extension.pem", "unknown-critical-extension"),
        ("bad/unknown-issuer.pem", "untrusted-root"),
        ("bad/rogue-root.pem", "untrusted-root"),
        ("bad/rogue-signer.pem", "untrusted-root"),
        ("bad/pathlen.pem", "path-length-exceeded"),
        // Without a CRL the revoked certificate is not known to be revoked.
        ("bad/revoked.pem", "trusted"),
    ] {
        assert_eq!(code(signer(&s, rel)), expected, "{rel}");
    }
}

#[test]
fn errors_name_the_certificate_and_the_times() {
    let leaf = &certs("bad/expired.pem")[0];
    let e = signer(&store(), "bad/expired.pem").unwrap_err();
    let text = e.to_string();
    for part in [
        leaf.subject.as_str(),
        leaf.serial.as_str(),
        leaf.fingerprint.as_str(),
        "2021-01-01T00:00:00Z",
        "2026-11-23T00:00:00Z",
    ] {
        assert!(text.contains(part), "{text:?} lacks {part:?}");
    }
    assert_eq!(
        e.problem,
        Problem::Expired {
            now: now(),
            not_after: at("2021-01-01T00:00:00Z")
        }
    );
    // In 2020 the certificate itself was valid, but its issuer was not yet: the failure
    // names the issuer.
    let e = signer_at(&store(), "bad/expired.pem", at("2020-06-01T00:00:00Z")).unwrap_err();
    assert_eq!(e.code(), "certificate-not-yet-valid");
    assert_eq!(
        e.cert.unwrap().fingerprint,
        certs("intermediate-ca.pem")[0].fingerprint
    );
}

#[test]
fn the_rogue_root_is_named_as_an_impersonation_of_the_anchor() {
    let e = signer(&store(), "bad/rogue-signer.pem").unwrap_err();
    let anchor = certs("root-ca.pem").remove(0);
    match &e.problem {
        Problem::UntrustedRoot {
            impersonates: Some(a),
        } => assert_eq!(a.fingerprint, anchor.fingerprint),
        other => panic!("{other:?}"),
    }
    // Without the rogue root in the chain, the signer's issuer is unknown: the anchor with
    // that name has another key identifier.
    let signer = certs("bad/rogue-signer.pem").remove(0);
    let e = store()
        .validate(&signer, &[], Purpose::Signer, false, now())
        .unwrap_err();
    assert!(
        matches!(
            e.problem,
            Problem::UnknownIssuer {
                other_key: true,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn unknown_issuer_without_its_ca() {
    let signer = certs("bad/unknown-issuer.pem").remove(0);
    let e = store()
        .validate(&signer, &[], Purpose::Signer, false, now())
        .unwrap_err();
    assert_eq!(
        e.problem,
        Problem::UnknownIssuer {
            issuer: "C=VN, O=truc test PKI, CN=Unrelated CA".into(),
            other_key: false
        }
    );
    // Trusting that CA makes it good.
    let other = TrustStore::new(certs("bad/unknown-ca.pem"), Vec::new());
    assert!(
        other
            .validate(&signer, &[], Purpose::Signer, false, now())
            .is_ok()
    );
}

#[test]
fn intermediates_come_from_the_chain_or_the_store() {
    let signer = certs("agencies/000.00.00.G12/sign.pem").remove(0);
    let bare = store().validate(&signer, &[], Purpose::Signer, false, now());
    assert_eq!(code(bare), "unknown-issuer");
    let configured = TrustStore::new(certs("root-ca.pem"), certs("intermediate-ca.pem"));
    assert!(
        configured
            .validate(&signer, &[], Purpose::Signer, false, now())
            .is_ok()
    );
}

#[test]
fn sha1_certificates_need_the_legacy_policy_and_are_reported() {
    let s = store();
    for rel in ["agencies/000.00.00.G22/sign.pem", "signers/rsa1024.pem"] {
        assert_eq!(code(signer(&s, rel)), "certificate-algorithm", "{rel}");
        let path = check(&s, rel, Purpose::Signer, true, now()).unwrap();
        assert!(path.legacy.contains(&Legacy::Sha1Certificate), "{rel}");
        // The cached link still honours the policy.
        assert_eq!(
            code(signer(&s, rel)),
            "certificate-algorithm",
            "{rel} (cached)"
        );
    }
}

#[test]
fn purposes_follow_key_usage_and_extended_key_usage() {
    let s = store();
    let cases = [
        ("hub/tls.pem", Purpose::TlsServer, "trusted"),
        ("hub/tls.pem", Purpose::TlsClient, "extended-key-usage"),
        ("hub/tls.pem", Purpose::Signer, "extended-key-usage"),
        (
            "agencies/000.00.00.H29/client.pem",
            Purpose::TlsClient,
            "trusted",
        ),
        (
            "agencies/000.00.00.H29/client.pem",
            Purpose::TlsServer,
            "extended-key-usage",
        ),
        (
            "agencies/000.00.00.H29/client.pem",
            Purpose::Signer,
            "extended-key-usage",
        ),
        ("bad/wrong-key-usage.pem", Purpose::TlsServer, "trusted"),
        ("bad/wrong-key-usage.pem", Purpose::TlsClient, "key-usage"),
    ];
    for (rel, purpose, expected) in cases {
        assert_eq!(
            code(check(&s, rel, purpose, false, now())),
            expected,
            "{rel} for {purpose}"
        );
    }
}

#[test]
fn a_ca_below_a_path_length_zero_ca_is_refused_at_the_constraint() {
    let e = signer(&store(), "bad/pathlen.pem").unwrap_err();
    assert_eq!(e.problem, Problem::PathLength { limit: 0, below: 1 });
    let intermediate = certs("intermediate-ca.pem").remove(0);
    assert_eq!(e.cert.unwrap().fingerprint, intermediate.fingerprint);
}

#[test]
fn no_anchor_no_trust() {
    let leaf = certs("agencies/000.00.00.G12/sign.pem");
    let e = TrustStore::default()
        .validate(&leaf[0], &leaf[1..], Purpose::Signer, false, now())
        .unwrap_err();
    assert_eq!(e.problem, Problem::NoAnchors);
}

#[test]
fn an_end_entity_configured_as_anchor_is_trusted_as_itself() {
    let leaf = certs("agencies/000.00.00.G12/sign.pem").remove(0);
    let s = TrustStore::new(vec![leaf.clone()], Vec::new());
    let path = s
        .validate(&leaf, &[], Purpose::Signer, false, now())
        .unwrap();
    assert_eq!(path.chain.len(), 1);
}

#[test]
fn the_current_crl_revokes_from_its_revocation_time() {
    let s = with_crls(&["crl"], RevocationPolicy::default());
    let e = signer(&s, "bad/revoked.pem").unwrap_err();
    assert_eq!(
        e.problem,
        Problem::Revoked {
            at: at("2026-06-01T00:00:00Z"),
            reason: Some("keyCompromise".into())
        }
    );
    assert!(
        e.to_string()
            .contains("revoked at 2026-06-01T00:00:00Z (keyCompromise)"),
        "{e}"
    );
    // Judged before the revocation: trusted, with a warning that says what came later.
    let path = signer_at(&s, "bad/revoked.pem", at("2026-05-31T23:59:59Z")).unwrap();
    assert_eq!(path.warnings.len(), 1, "{:?}", path.warnings);
    assert!(path.warnings[0].contains("revoked later, at 2026-06-01T00:00:00Z"));
    // Others under the same CA are good and carry no warning.
    let path = signer(&s, "agencies/000.00.00.G12/sign.pem").unwrap();
    assert!(path.warnings.is_empty(), "{:?}", path.warnings);
}

#[test]
fn a_stale_crl_fails_hard_by_default_and_soft_when_asked() {
    let stale = ["crl/intermediate-ca-stale.crl"];
    let hard = with_crls(&stale, RevocationPolicy::default());
    let e = signer(&hard, "agencies/000.00.00.G12/sign.pem").unwrap_err();
    assert_eq!(e.code(), "revocation-unavailable");
    assert!(
        e.to_string()
            .contains("stale: nextUpdate 2026-02-01T00:00:00Z"),
        "{e}"
    );
    // While it was current, it was fine.
    assert!(
        signer_at(
            &hard,
            "agencies/000.00.00.G12/sign.pem",
            at("2026-01-15T00:00:00Z")
        )
        .is_ok()
    );
    let soft = with_crls(
        &stale,
        RevocationPolicy {
            hard_fail: false,
            ..RevocationPolicy::default()
        },
    );
    let path = signer(&soft, "agencies/000.00.00.G12/sign.pem").unwrap();
    assert!(
        path.warnings[0].contains("soft fail"),
        "{:?}",
        path.warnings
    );
}

#[test]
fn the_newest_crl_wins_when_a_stale_one_is_also_configured() {
    let both = with_crls(
        &["crl/intermediate-ca-stale.crl", "crl/intermediate-ca.crl"],
        RevocationPolicy::default(),
    );
    assert_eq!(
        code(signer(&both, "bad/revoked.pem")),
        "certificate-revoked"
    );
    assert!(signer(&both, "agencies/000.00.00.H41/sign.pem").is_ok());
}

#[test]
fn issuers_without_a_crl_are_unchecked_unless_required() {
    // The current CRL covers the issuing CA; nothing covers the issuing CA itself (the
    // root publishes no CRL here).
    let required = with_crls(
        &["crl"],
        RevocationPolicy {
            require_for_every_issuer: true,
            ..RevocationPolicy::default()
        },
    );
    let e = signer(&required, "agencies/000.00.00.G12/sign.pem").unwrap_err();
    assert_eq!(e.code(), "revocation-unavailable");
    assert!(e.to_string().contains("Issuing CA"), "{e}");
}

#[test]
fn a_crl_whose_signature_does_not_verify_is_not_believed() {
    let dir = tempfile::tempdir().unwrap();
    let mut der = std::fs::read(pki("crl/intermediate-ca-stale.crl")).unwrap();
    let last = der.len() - 1;
    der[last] ^= 1;
    std::fs::write(dir.path().join("broken.crl"), der).unwrap();
    let crls = CrlStore::open(vec![dir.path().to_owned()]).unwrap();
    let s = store().with_revocation(Arc::new(crls), RevocationPolicy::default());
    let e = signer_at(
        &s,
        "agencies/000.00.00.G12/sign.pem",
        at("2026-01-15T00:00:00Z"),
    )
    .unwrap_err();
    assert_eq!(e.code(), "revocation-unavailable");
    assert!(e.to_string().contains("does not verify"), "{e}");
}

#[test]
fn crl_files_that_are_not_crls_are_refused_at_open() {
    let e = CrlStore::open(vec![pki("root-ca.pem")]).unwrap_err();
    assert!(e.0.contains("root-ca.pem"), "{e}");
    let e = CrlStore::open(vec![pki("no-such.crl")]).unwrap_err();
    assert!(e.0.contains("cannot read"), "{e}");
}

/// The reload path: a CRL directory that starts with the stale CRL, gains the current one,
/// gets a broken file, and loses every file.
#[test]
fn crls_reload_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &str, to: &str| {
        std::fs::copy(pki(from), dir.path().join(to)).unwrap();
    };
    copy("crl/intermediate-ca-stale.crl", "a.crl");
    let crls = Arc::new(CrlStore::open(vec![dir.path().to_owned()]).unwrap());
    let s = store().with_revocation(crls.clone(), RevocationPolicy::default());
    let revoked = || code(signer(&s, "bad/revoked.pem"));
    assert_eq!(revoked(), "revocation-unavailable");
    assert_eq!(crls.reload_if_changed(), None, "nothing changed");

    copy("crl/intermediate-ca.crl", "b.crl");
    let report = crls.reload_if_changed().expect("a new file is a change");
    assert_eq!(
        report,
        crl::ReloadReport {
            loaded: 2,
            errors: vec![]
        }
    );
    assert_eq!(revoked(), "certificate-revoked");

    // A broken file keeps what it held before; here it held nothing, so it adds an error.
    std::fs::write(dir.path().join("c.crl"), b"not a CRL").unwrap();
    let report = crls.reload_if_changed().unwrap();
    assert_eq!(report.loaded, 2);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(revoked(), "certificate-revoked");

    // Overwrite the current CRL with garbage: its revocations are kept.
    std::fs::write(dir.path().join("b.crl"), b"garbage of another size").unwrap();
    let report = crls.reload_if_changed().unwrap();
    assert_eq!(report.loaded, 2, "{report:?}");
    assert_eq!(revoked(), "certificate-revoked");

    // Every file gone: the issuer had a CRL, so its status is unavailable, not unchecked.
    for f in ["a.crl", "b.crl", "c.crl"] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let report = crls.reload_if_changed().unwrap();
    assert_eq!(report.loaded, 0);
    let e = signer(&s, "agencies/000.00.00.G12/sign.pem").unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

/// The watcher thread notices a new file without being asked.
#[test]
fn the_watcher_reloads_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        pki("crl/intermediate-ca-stale.crl"),
        dir.path().join("a.crl"),
    )
    .unwrap();
    let crls = Arc::new(CrlStore::open(vec![dir.path().to_owned()]).unwrap());
    let handle = crls.watch(std::time::Duration::from_millis(20));
    std::fs::copy(pki("crl/intermediate-ca.crl"), dir.path().join("b.crl")).unwrap();
    let mut seen = 0;
    for _ in 0..500 {
        seen = crls.current().crls().count();
        if seen == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(seen, 2, "the watcher did not pick up the new CRL");
    drop(handle);
}

#[test]
fn crls_parse_with_their_dates_and_entries() {
    let current = Crl::load(&pki("crl/intermediate-ca.crl")).unwrap();
    assert_eq!(current.len(), 1);
    let c = &current[0];
    assert_eq!(c.issuer, "C=VN, O=truc test PKI, CN=truc Test Issuing CA");
    assert_eq!(c.this_update, at("2026-11-01T00:00:00Z"));
    assert_eq!(c.next_update, Some(at("2036-01-01T00:00:00Z")));
    assert_eq!(c.len(), 1);
    let stale = Crl::load(&pki("crl/intermediate-ca-stale.crl")).unwrap();
    assert!(stale[0].is_empty());
    assert_eq!(stale[0].next_update, Some(at("2026-02-01T00:00:00Z")));
}

#[test]
fn directories_of_anchors_load_every_certificate_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(pki("root-ca.pem"), dir.path().join("root.pem")).unwrap();
    std::fs::copy(pki("bad/unknown-ca.pem"), dir.path().join("other.crt")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    assert_eq!(load_all(&[dir.path()]).unwrap().len(), 2);
    let empty = tempfile::tempdir().unwrap();
    assert!(load_all(&[empty.path()]).is_err());
}

/// Hierarchies made on the fly with rcgen (ECDSA P-256), for the shapes the committed PKI
/// does not have: same-name issuers, cross-certificates, long chains, hostile chains.
mod generated {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
    };

    use super::now;
    use crate::pki::{Certificate, Problem, Purpose, TrustStore};

    /// A certificate with its parameters and key, able to issue more.
    struct Made {
        params: CertificateParams,
        key: KeyPair,
        cert: Certificate,
    }

    impl Made {
        fn issue(&self, params: CertificateParams) -> Made {
            let key = KeyPair::generate().unwrap();
            let issuer = Issuer::from_params(&self.params, &self.key);
            let der = params.signed_by(&key, &issuer).unwrap().der().to_vec();
            Made {
                params,
                key,
                cert: Certificate::from_der(der).unwrap(),
            }
        }
    }

    fn params(cn: &str, ca: Option<BasicConstraints>) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.not_before = date_time_ymd(2026, 1, 1);
        p.not_after = date_time_ymd(2036, 1, 1);
        match ca {
            Some(bc) => {
                p.is_ca = IsCa::Ca(bc);
                p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            }
            None => {
                p.is_ca = IsCa::ExplicitNoCa;
                p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            }
        }
        p
    }

    fn ca(cn: &str) -> CertificateParams {
        params(cn, Some(BasicConstraints::Unconstrained))
    }

    fn leaf(cn: &str) -> CertificateParams {
        params(cn, None)
    }

    fn root() -> Made {
        let params = ca("Generated Root");
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Made {
            params,
            key,
            cert: Certificate::from_der(der).unwrap(),
        }
    }

    fn anchored(root: &Made) -> TrustStore {
        TrustStore::new(vec![root.cert.clone()], Vec::new())
    }

    fn validate(store: &TrustStore, leaf: &Made, extra: &[&Made]) -> Result<Vec<String>, Problem> {
        let extra: Vec<Certificate> = extra.iter().map(|m| m.cert.clone()).collect();
        store
            .validate(&leaf.cert, &extra, Purpose::Signer, false, now())
            .map(|p| p.chain.iter().map(|c| c.fingerprint.clone()).collect())
            .map_err(|u| u.problem)
    }

    #[test]
    fn every_candidate_issuer_is_tried() {
        let r = root();
        // Two CAs with the same name and different keys; the leaf carries no
        // authorityKeyIdentifier, so only the signature tells them apart.
        let wrong = r.issue(ca("Issuing"));
        let right = r.issue(ca("Issuing"));
        let signer = right.issue(leaf("Signer"));
        for extra in [[&wrong, &right], [&right, &wrong]] {
            let chain = validate(&anchored(&r), &signer, &extra).unwrap();
            assert_eq!(chain[1], right.cert.fingerprint);
        }
        // Only the wrong one available: its signature is the reason.
        let e = validate(&anchored(&r), &signer, &[&wrong]).unwrap_err();
        assert!(matches!(e, Problem::BadSignature { .. }), "{e:?}");
    }

    #[test]
    fn an_expired_cross_certificate_is_passed_over_for_a_valid_one() {
        let r = root();
        let issuing = r.issue(ca("Issuing"));
        // The same CA key and name, certified earlier for a period that has ended.
        let mut old = ca("Issuing");
        old.not_before = date_time_ymd(2020, 1, 1);
        old.not_after = date_time_ymd(2021, 1, 1);
        let issuer = Issuer::from_params(&r.params, &r.key);
        let der = old.signed_by(&issuing.key, &issuer).unwrap().der().to_vec();
        let old = Certificate::from_der(der).unwrap();
        let signer = issuing.issue(leaf("Signer"));
        let check = |extra: &[Certificate]| {
            anchored(&r).validate(&signer.cert, extra, Purpose::Signer, false, now())
        };
        let path = check(&[old.clone(), issuing.cert.clone()]).unwrap();
        assert_eq!(path.chain[1].fingerprint, issuing.cert.fingerprint);
        let e = check(&[old]).unwrap_err();
        assert!(matches!(e.problem, Problem::Expired { .. }), "{e:?}");
    }

    #[test]
    fn issuer_names_match_across_string_types_case_and_spaces() {
        use rcgen::DnValue;
        use rcgen::string::PrintableString;
        let r = root();
        // The CA's subject is a UTF8String; the leaf names its issuer as a PrintableString
        // in capitals with doubled spaces, as some issuing software does.
        let issuing = r.issue(ca("Issuing CA"));
        let mut as_printable = issuing.params.clone();
        let mut dn = DistinguishedName::new();
        let printable = PrintableString::try_from("  ISSUING   ca ").unwrap();
        dn.push(DnType::CommonName, DnValue::PrintableString(printable));
        as_printable.distinguished_name = dn;
        let issuer = Issuer::from_params(&as_printable, &issuing.key);
        let key = KeyPair::generate().unwrap();
        let der = leaf("Signer")
            .signed_by(&key, &issuer)
            .unwrap()
            .der()
            .to_vec();
        let signer = Certificate::from_der(der).unwrap();
        assert_ne!(
            signer.issuer, issuing.cert.subject,
            "the names differ as strings"
        );
        let path = anchored(&r)
            .validate(
                &signer,
                std::slice::from_ref(&issuing.cert),
                Purpose::Signer,
                false,
                now(),
            )
            .unwrap();
        assert_eq!(path.chain[1].fingerprint, issuing.cert.fingerprint);
    }

    #[test]
    fn paths_are_bounded_in_depth() {
        let r = root();
        // MAX_DEPTH is 8 certificates: leaf, 6 CAs and the anchor fit; 7 CAs do not.
        let mut cas = vec![r.issue(ca("CA 1"))];
        for i in 2..=7 {
            let next = cas[cas.len() - 1].issue(ca(&format!("CA {i}")));
            cas.push(next);
        }
        let extra: Vec<&Made> = cas.iter().collect();
        let six = cas[5].issue(leaf("Signer under six"));
        assert_eq!(validate(&anchored(&r), &six, &extra).unwrap().len(), 8);
        let seven = cas[6].issue(leaf("Signer under seven"));
        assert_eq!(
            validate(&anchored(&r), &seven, &extra).unwrap_err(),
            Problem::PathTooLong
        );
    }

    #[test]
    fn hostile_chains_exhaust_a_budget_not_the_machine() {
        let r = root();
        // 80 CAs named like the leaf's issuer, none of which signed it.
        let decoys: Vec<Made> = (0..80).map(|_| r.issue(ca("Issuing"))).collect();
        let hidden = root().issue(ca("Issuing"));
        let signer = hidden.issue(leaf("Signer"));
        let extra: Vec<&Made> = decoys.iter().collect();
        assert_eq!(
            validate(&anchored(&r), &signer, &extra).unwrap_err(),
            Problem::SearchBudget
        );
    }

    #[test]
    fn issuers_must_be_cas_with_key_cert_sign() {
        let r = root();
        let not_ca = r.issue(params("Not a CA", None));
        let signer = not_ca.issue(leaf("Signer"));
        assert_eq!(
            validate(&anchored(&r), &signer, &[&not_ca]).unwrap_err(),
            Problem::NotCa
        );
        let mut no_bc = ca("No basicConstraints");
        no_bc.is_ca = IsCa::NoCa;
        let no_bc = r.issue(no_bc);
        let signer = no_bc.issue(leaf("Signer"));
        assert_eq!(
            validate(&anchored(&r), &signer, &[&no_bc]).unwrap_err(),
            Problem::NotCa
        );
        let mut no_sign = ca("No keyCertSign");
        no_sign.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let no_sign = r.issue(no_sign);
        let signer = no_sign.issue(leaf("Signer"));
        assert_eq!(
            validate(&anchored(&r), &signer, &[&no_sign]).unwrap_err(),
            Problem::KeyUsage {
                needed: "keyCertSign"
            }
        );
    }

    #[test]
    fn a_cas_extended_key_usage_constrains_what_it_issues() {
        let r = root();
        let mut tls_only = ca("TLS only");
        tls_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let tls_only = r.issue(tls_only);
        let signer = tls_only.issue(leaf("Signer"));
        assert!(matches!(
            validate(&anchored(&r), &signer, &[&tls_only]).unwrap_err(),
            Problem::ExtKeyUsage {
                purpose: Purpose::Signer,
                ..
            }
        ));
        let extra = [tls_only.cert.clone()];
        assert!(
            anchored(&r)
                .validate(&signer.cert, &extra, Purpose::TlsServer, false, now())
                .is_ok()
        );
    }

    #[test]
    fn path_length_counts_the_cas_below() {
        let r = root();
        let one = r.issue(params("pathLen 1", Some(BasicConstraints::Constrained(1))));
        let below = one.issue(ca("Below"));
        let signer = below.issue(leaf("Signer"));
        assert!(validate(&anchored(&r), &signer, &[&one, &below]).is_ok());
        let deeper = below.issue(ca("Deeper"));
        let signer = deeper.issue(leaf("Signer"));
        assert_eq!(
            validate(&anchored(&r), &signer, &[&one, &below, &deeper]).unwrap_err(),
            Problem::PathLength { limit: 1, below: 2 }
        );
    }
}

/// The KeyInfo certificate cache gives back the certificate the text decodes to, and a text
/// that shares another's length and ending (a collision of the cache's key) is decoded, not
/// mistaken for it.
#[test]
fn the_certificate_cache_matches_whole_texts() {
    use base64::Engine as _;
    let b64 = |c: &Certificate| base64::engine::general_purpose::STANDARD.encode(c.der());
    let decode = |t: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(|e| e.to_string())
    };
    let chain = certs("agencies/000.00.00.G12/sign.pem");
    let (leaf, ca) = (&chain[0], &chain[1]);
    for _ in 0..2 {
        for c in [leaf, ca] {
            let got = Certificate::from_text_cached(&b64(c), decode, |e| e.to_string()).unwrap();
            assert_eq!(got.der(), c.der());
        }
    }
    // The leaf's text with one character early on changed: same length, same last 64 bytes.
    let mut text = b64(leaf).into_bytes();
    text[40] = if text[40] == b'A' { b'B' } else { b'A' };
    let text = String::from_utf8(text).unwrap();
    match Certificate::from_text_cached(&text, decode, |e| e.to_string()) {
        Ok(c) => assert_ne!(c.der(), leaf.der(), "not the cached leaf"),
        Err(e) => assert!(e.contains("certificate"), "{e}"),
    }
    assert!(
        Certificate::from_text_cached("not base64!", decode, |e| e.to_string()).is_err(),
        "a decoding error is the caller's"
    );
}
