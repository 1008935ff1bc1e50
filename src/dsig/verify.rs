//! Core validation of one `ds:Signature`.
//!
//! The order is fixed and each step has its own verdict:
//! 1. structure (the XML-Signature schema shape, base64 values) — `Invalid` when broken;
//! 2. policy, before any cryptography: every algorithm, transform and reference form on the
//!    allow-list, legacy features only when allowed, and under [`Policy::strict`] the
//!    document shape — `Refused`;
//! 3. the key: pinned, from a certificate in KeyInfo (to be validated to an anchor), or,
//!    only in insecure mode, whatever KeyInfo carries; its size and curve — `Refused`;
//! 4. the SignedInfo signature over its canonical form, in document context — `Invalid`;
//! 5. every Reference: resolve, transform, canonicalize, digest, compare — `Invalid`;
//! 6. trust: the certificate path to an anchor at `now` — `Untrusted`.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;

use super::c14n::{self, Canonicalizer, NodeSet};
use super::crypto::{self, EcdsaEncoding, Hash, Legacy, PolicyError, PublicKey, SignatureAlg};
use super::{CertInfo, DSIG_NS, DSIG11_NS, ENVELOPED, KeySource, ReferenceReport, Report, Verdict};
use crate::directory::Directory;
use crate::pki::{Certificate, Purpose, TrustStore};
use crate::xml::{Document, Element, Limits, NodeId, NodeKind, XML_NS};

/// What the verifier accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Accept SHA-1, RSA keys of 1024..2048 bits and `#xpointer` references (recorded).
    pub allow_legacy: bool,
    /// Demand the package shape: exactly one Signature, one Reference covering the whole
    /// document (`URI=""` or the root's Id) with the enveloped transform then one
    /// canonicalization, no `ds:Object`.
    pub strict: bool,
}

impl Policy {
    /// The strict package policy, legacy off.
    pub fn strict() -> Self {
        Policy {
            allow_legacy: false,
            strict: true,
        }
    }
}

/// Where verification may take keys from.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    /// Anchors and intermediates for certificates found in KeyInfo.
    pub trust: TrustStore,
    /// Pinned certificates: their keys are trusted as they are (no path, no validity check).
    pub pinned_certs: Vec<Certificate>,
    /// Pinned public keys.
    pub pinned_keys: Vec<PublicKey>,
    /// Use the key in KeyInfo without any trust decision.
    pub insecure: bool,
    /// The agency directory. When set, [`super::verify_package`] also requires that the
    /// signer may sign for the package's sender (`signer-not-authorized-for-sender`).
    pub directory: Option<std::sync::Arc<Directory>>,
}

/// The `wsu:Id` namespace (WS-Security utility), whose `Id` attribute is an ID by convention.
const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const EXC_C14N_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const MANIFEST_TYPE: &str = "http://www.w3.org/2000/09/xmldsig#Manifest";

/// Parses `bytes` and verifies the first `ds:Signature` (the only one, under the strict
/// policy) in document order.
pub fn verify(bytes: &[u8], keys: &Keys, policy: &Policy, now: Timestamp) -> Verdict {
    let doc = match Document::parse(bytes, &Limits::default()) {
        Ok(d) => d,
        Err(e) => return Verdict::invalid("not-xml", e.located(bytes)),
    };
    let signatures = signatures(&doc);
    match signatures.as_slice() {
        [] => Verdict::invalid("no-signature", "no ds:Signature element in the document"),
        [_, _, ..] if policy.strict => Verdict::refused(
            "multiple-signatures",
            format!(
                "{} ds:Signature elements; exactly one is allowed",
                signatures.len()
            ),
        ),
        [first, ..] => verify_signature(&doc, *first, keys, policy, now),
    }
}

/// Every `ds:Signature` element in document order.
pub fn signatures(doc: &Document<'_>) -> Vec<NodeId> {
    doc.elements()
        .filter(|(_, e)| e.is(DSIG_NS, "Signature"))
        .map(|(id, _)| id)
        .collect()
}

/// Verifies the `ds:Signature` element `sig` of `doc`.
pub fn verify_signature(
    doc: &Document<'_>,
    sig: NodeId,
    keys: &Keys,
    policy: &Policy,
    now: Timestamp,
) -> Verdict {
    match verify_signature_with_cert(doc, sig, keys, policy, now) {
        Ok((report, _)) => Verdict::Valid(Box::new(report)),
        Err(v) => v,
    }
}

/// [`verify_signature`], also returning the signer certificate when the key came with one.
pub(crate) fn verify_signature_with_cert(
    doc: &Document<'_>,
    sig: NodeId,
    keys: &Keys,
    policy: &Policy,
    now: Timestamp,
) -> Result<(Report, Option<Certificate>), Verdict> {
    Verifier::new(doc, sig, keys, policy).and_then(|v| v.run(now))
}

/// A parsed Reference.
struct Reference<'d> {
    uri: Option<&'d str>,
    kind: Option<&'d str>,
    transforms: Vec<Transform<'d>>,
    digest_uri: &'d str,
    digest_value: Vec<u8>,
}

struct Transform<'d> {
    uri: &'d str,
    prefix_list: Option<&'d str>,
    has_parameters: bool,
}

/// A Reference that passed policy: what to digest and how.
struct Plan<'d> {
    uri: &'d str,
    set: NodeSet,
    c14n: Canonicalizer,
    hash: Hash,
    expected: Vec<u8>,
    resolved: String,
    transforms: Vec<String>,
}

struct Verifier<'d, 'a> {
    doc: &'d Document<'a>,
    sig: NodeId,
    keys: &'d Keys,
    policy: &'d Policy,
    signed_info: NodeId,
    c14n: Canonicalizer,
    c14n_uri: &'d str,
    alg: SignatureAlg,
    signature_value: Vec<u8>,
    key_info: Option<NodeId>,
    plans: Vec<Plan<'d>>,
    legacy: Vec<Legacy>,
}

type Step<T> = Result<T, Verdict>;

fn malformed(reason: impl Into<String>) -> Verdict {
    Verdict::invalid("malformed-signature", reason)
}

/// Child elements of `id`; non-whitespace text is malformed, comments and PIs are skipped.
fn children<'d, 'a>(doc: &'d Document<'a>, id: NodeId) -> Step<Vec<(NodeId, &'d Element<'a>)>> {
    let mut out = Vec::new();
    let Some(e) = doc.element(id) else {
        return Ok(out);
    };
    for &c in &e.children {
        match &doc.node(c).kind {
            NodeKind::Element(ce) => out.push((c, ce)),
            NodeKind::Text(t) if !t.trim_matches([' ', '\t', '\r', '\n']).is_empty() => {
                return Err(malformed(format!("unexpected text in ds:{}", e.local)));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn algorithm_of<'d>(e: &'d Element<'_>) -> Step<&'d str> {
    e.attribute("Algorithm")
        .ok_or_else(|| malformed(format!("ds:{} without an Algorithm attribute", e.local)))
}

/// Base64 with any XML whitespace inside; anything else must be exact.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let bytes = text.as_bytes();
    if !bytes.iter().any(space) {
        return B64.decode(bytes).ok();
    }
    let compact: Vec<u8> = bytes.iter().copied().filter(|b| !space(b)).collect();
    B64.decode(compact).ok()
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The InclusiveNamespaces PrefixList among a c14n method's children, and whether anything
/// else is there.
fn prefix_list<'d>(doc: &'d Document<'_>, id: NodeId) -> Step<(Option<&'d str>, bool)> {
    let mut list = None;
    let mut other = false;
    for (_, e) in children(doc, id)? {
        if e.is(EXC_C14N_NS, "InclusiveNamespaces") {
            list = Some(e.attribute("PrefixList").unwrap_or(""));
        } else {
            other = true;
        }
    }
    Ok((list, other))
}

impl<'d, 'a> Verifier<'d, 'a> {
    /// Steps 1 and 2: structure and policy.
    fn new(doc: &'d Document<'a>, sig: NodeId, keys: &'d Keys, policy: &'d Policy) -> Step<Self> {
        let kids = children(doc, sig)?;
        let mut it = kids.iter().peekable();
        let mut expect = |name: &str| match it.next() {
            Some(&(id, e)) if e.is(DSIG_NS, name) => Ok(id),
            Some((_, e)) => Err(malformed(format!(
                "expected ds:{name} in ds:Signature, found {}",
                e.qname()
            ))),
            None => Err(malformed(format!("ds:Signature lacks ds:{name}"))),
        };
        let signed_info = expect("SignedInfo")?;
        let value_node = expect("SignatureValue")?;
        let mut key_info = None;
        if let Some(&&(id, e)) = it.peek() {
            if e.is(DSIG_NS, "KeyInfo") {
                key_info = Some(id);
                it.next();
            }
        }
        let mut objects = 0;
        for (_, e) in it {
            if !e.is(DSIG_NS, "Object") {
                return Err(malformed(format!(
                    "unexpected {} in ds:Signature",
                    e.qname()
                )));
            }
            objects += 1;
        }
        let signature_value = decode_base64(&doc.text(value_node))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| malformed("ds:SignatureValue is not base64"))?;

        // SignedInfo: CanonicalizationMethod, SignatureMethod, Reference+.
        let si = children(doc, signed_info)?;
        let [(cm, cm_e), (sm, sm_e), refs @ ..] = si.as_slice() else {
            return Err(malformed(
                "ds:SignedInfo must hold CanonicalizationMethod, SignatureMethod, Reference+",
            ));
        };
        if !cm_e.is(DSIG_NS, "CanonicalizationMethod") || !sm_e.is(DSIG_NS, "SignatureMethod") {
            return Err(malformed(
                "ds:SignedInfo must start with CanonicalizationMethod then SignatureMethod",
            ));
        }
        if refs.is_empty() {
            return Err(malformed("ds:SignedInfo has no ds:Reference"));
        }
        let c14n_uri = algorithm_of(cm_e)?;
        let c14n_alg = c14n::Algorithm::from_uri(c14n_uri).ok_or_else(|| {
            Verdict::refused(
                "unsupported-canonicalization",
                format!("CanonicalizationMethod {c14n_uri} is not supported"),
            )
        })?;
        let (list, other) = prefix_list(doc, *cm)?;
        if other {
            return Err(Verdict::refused(
                "unsupported-canonicalization",
                "unexpected parameters in CanonicalizationMethod",
            ));
        }
        let mut c14n = Canonicalizer::new(c14n_alg.method);
        c14n.comments = c14n_alg.with_comments;
        if let Some(l) = list {
            c14n = c14n.with_prefix_list(l);
        }
        let method_uri = algorithm_of(sm_e)?;
        if !children(doc, *sm)?.is_empty() {
            return Err(Verdict::refused(
                "unsupported-signature-method",
                format!("SignatureMethod {method_uri} with parameters (HMAC output length?)"),
            ));
        }
        let alg = SignatureAlg::from_uri(method_uri).ok_or_else(|| {
            Verdict::refused(
                "unsupported-signature-method",
                format!("SignatureMethod {method_uri} is not supported"),
            )
        })?;

        let mut references = Vec::new();
        for &(r, e) in refs {
            if !e.is(DSIG_NS, "Reference") {
                return Err(malformed(format!(
                    "unexpected {} in ds:SignedInfo",
                    e.qname()
                )));
            }
            references.push(Self::reference(doc, r)?);
        }

        let mut v = Verifier {
            doc,
            sig,
            keys,
            policy,
            signed_info,
            c14n,
            c14n_uri,
            alg,
            signature_value,
            key_info,
            plans: Vec::new(),
            legacy: Vec::new(),
        };
        if alg.hash == Hash::Sha1 {
            v.legacy(Legacy::RsaSha1, "the rsa-sha1 signature method")?;
        }
        let ids = ids(doc)?;
        if policy.strict {
            v.check_shape(&references, objects)?;
        }
        for r in references {
            let plan = v.plan(r, &ids)?;
            v.plans.push(plan);
        }
        Ok(v)
    }

    fn reference(doc: &'d Document<'a>, id: NodeId) -> Step<Reference<'d>> {
        let e = doc
            .element(id)
            .ok_or_else(|| malformed("ds:Reference is not an element"))?;
        let kids = children(doc, id)?;
        let mut it = kids.iter().peekable();
        let mut transforms = Vec::new();
        if let Some(&&(t, te)) = it.peek() {
            if te.is(DSIG_NS, "Transforms") {
                it.next();
                for (tid, tr) in children(doc, t)? {
                    if !tr.is(DSIG_NS, "Transform") {
                        return Err(malformed(format!(
                            "unexpected {} in ds:Transforms",
                            tr.qname()
                        )));
                    }
                    let (prefix_list, has_parameters) = prefix_list(doc, tid)?;
                    transforms.push(Transform {
                        uri: algorithm_of(tr)?,
                        prefix_list,
                        has_parameters,
                    });
                }
            }
        }
        let digest_uri = match it.next() {
            Some(&(_, dm)) if dm.is(DSIG_NS, "DigestMethod") => algorithm_of(dm)?,
            _ => return Err(malformed("ds:Reference lacks ds:DigestMethod")),
        };
        let digest_value = match it.next() {
            Some(&(dv, dve)) if dve.is(DSIG_NS, "DigestValue") => decode_base64(&doc.text(dv))
                .ok_or_else(|| malformed("ds:DigestValue is not base64"))?,
            _ => return Err(malformed("ds:Reference lacks ds:DigestValue")),
        };
        if let Some((_, extra)) = it.next() {
            return Err(malformed(format!(
                "unexpected {} in ds:Reference",
                extra.qname()
            )));
        }
        Ok(Reference {
            uri: e.attribute("URI"),
            kind: e.attribute("Type"),
            transforms,
            digest_uri,
            digest_value,
        })
    }

    fn legacy(&mut self, feature: Legacy, what: &str) -> Step<()> {
        if !self.policy.allow_legacy {
            return Err(Verdict::refused(
                "legacy-not-allowed",
                format!("{what} is legacy and the legacy policy is not enabled"),
            ));
        }
        if !self.legacy.contains(&feature) {
            self.legacy.push(feature);
        }
        Ok(())
    }

    /// The strict document shape.
    fn check_shape(&self, refs: &[Reference<'d>], objects: usize) -> Step<()> {
        let refuse = |why: String| Err(Verdict::refused("signature-shape", why));
        let doc = self.doc;
        if objects > 0 {
            return refuse("ds:Object is not allowed in a package signature".into());
        }
        if self.sig == doc.root() {
            return refuse("the signature must be enveloped in the document it signs".into());
        }
        let [r] = refs else {
            return refuse(format!(
                "exactly one ds:Reference is allowed, found {}",
                refs.len()
            ));
        };
        let root_id = element_id(doc.element(doc.root()));
        match r.uri {
            Some("") => {}
            Some(u) if u.strip_prefix('#').is_some_and(|id| Some(id) == root_id) => {}
            other => {
                return refuse(format!(
                    "the Reference must cover the whole document (URI=\"\" or the root's Id), not {other:?}"
                ));
            }
        }
        let uris: Vec<&str> = r.transforms.iter().map(|t| t.uri).collect();
        match uris.as_slice() {
            [ENVELOPED, c] if c14n::Algorithm::from_uri(c).is_some() => Ok(()),
            _ => refuse(format!(
                "the Reference must have exactly the enveloped-signature transform then one \
                 canonicalization, found {uris:?}"
            )),
        }
    }

    /// Policy for one Reference, and what it resolves to.
    fn plan(&mut self, r: Reference<'d>, ids: &HashMap<&'d str, NodeId>) -> Step<Plan<'d>> {
        let doc = self.doc;
        let unsupported = |code, why: String| Err(Verdict::refused(code, why));
        if r.kind == Some(MANIFEST_TYPE) {
            return unsupported(
                "unsupported-reference",
                "Manifest references are not processed".into(),
            );
        }
        let Some(uri) = r.uri else {
            return unsupported(
                "unsupported-reference",
                "a Reference without URI needs an application-defined resolver".into(),
            );
        };
        // (apex, keeps comments, description)
        let (apex, keep_comments) = if uri.is_empty() {
            (None, false)
        } else if let Some(frag) = uri.strip_prefix('#') {
            if let Some(xp) = frag.strip_prefix("xpointer(") {
                self.legacy(Legacy::XpointerUri, "an #xpointer(...) reference")?;
                let Some(inner) = xp.strip_suffix(')') else {
                    return unsupported("unsupported-reference", format!("URI {uri:?}"));
                };
                if inner == "/" {
                    (None, true)
                } else if let Some(id) = inner
                    .strip_prefix("id(")
                    .and_then(|s| s.strip_suffix(')'))
                    .and_then(|s| {
                        s.strip_prefix('\'')
                            .and_then(|s| s.strip_suffix('\''))
                            .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                    })
                {
                    (Some(self.resolve(ids, id)?), true)
                } else {
                    return unsupported(
                        "unsupported-reference",
                        format!(
                            "only #xpointer(/) and #xpointer(id('...')) are supported, not {uri:?}"
                        ),
                    );
                }
            } else {
                (Some(self.resolve(ids, frag)?), false)
            }
        } else {
            return unsupported(
                "unsupported-reference",
                format!("external reference {uri:?}: only same-document references are allowed"),
            );
        };
        let mut set = NodeSet {
            apex,
            exclude: None,
        };
        let mut c14n: Option<Canonicalizer> = None;
        let mut names = Vec::new();
        for t in &r.transforms {
            names.push(t.uri.to_owned());
            if c14n.is_some() {
                return unsupported(
                    "unsupported-transform",
                    format!("transform {} after canonicalization", t.uri),
                );
            }
            if t.uri == ENVELOPED {
                if t.has_parameters || t.prefix_list.is_some() {
                    return Err(malformed("enveloped-signature transform with parameters"));
                }
                if apex.is_none_or(|a| is_ancestor(doc, a, self.sig)) {
                    set.exclude = Some(self.sig);
                }
            } else if let Some(alg) = c14n::Algorithm::from_uri(t.uri) {
                if t.has_parameters {
                    return unsupported(
                        "unsupported-transform",
                        format!("unexpected parameters in transform {}", t.uri),
                    );
                }
                let mut c = Canonicalizer::new(alg.method);
                c.comments = alg.with_comments && keep_comments;
                if let Some(l) = t.prefix_list {
                    c = c.with_prefix_list(l);
                }
                c14n = Some(c);
            } else {
                return unsupported(
                    "unsupported-transform",
                    format!("transform {} is not supported", t.uri),
                );
            }
        }
        let hash = Hash::from_digest_uri(r.digest_uri).ok_or_else(|| {
            Verdict::refused(
                "unsupported-digest",
                format!("DigestMethod {} is not supported", r.digest_uri),
            )
        })?;
        if hash == Hash::Sha1 {
            self.legacy(Legacy::Sha1Digest, "a SHA-1 digest")?;
        }
        let mut resolved = match apex {
            None => "the whole document".to_owned(),
            Some(a) => match doc.element(a) {
                Some(e) => format!("element {} {uri}", e.qname()),
                None => uri.to_owned(),
            },
        };
        if set.exclude.is_some() {
            resolved.push_str(" minus the enveloped signature");
        }
        if keep_comments {
            resolved.push_str(" (comments included)");
        }
        Ok(Plan {
            uri,
            set,
            c14n: c14n.unwrap_or_else(|| Canonicalizer::new(c14n::Method::C14n10)),
            hash,
            expected: r.digest_value,
            resolved,
            transforms: names,
        })
    }

    fn resolve(&self, ids: &HashMap<&'d str, NodeId>, id: &str) -> Step<NodeId> {
        ids.get(id).copied().ok_or_else(|| {
            Verdict::invalid(
                "unresolved-reference",
                format!("no element with Id {id:?} in the document"),
            )
        })
    }

    /// Steps 3 to 6.
    fn run(mut self, now: Timestamp) -> Step<(Report, Option<Certificate>)> {
        let doc = self.doc;
        let mut timings = super::Timings::default();
        let started = crate::clock::monotonic();
        let mut signed = Vec::new();
        self.c14n
            .canonicalize(doc, &NodeSet::subtree(self.signed_info), &mut signed);

        let key_info = KeyInfo::read(doc, self.key_info)?;
        let keys = self.keys;
        let (key, cert, source) = if !keys.pinned_certs.is_empty() || !keys.pinned_keys.is_empty() {
            let mut candidates: Vec<(PublicKey, Option<&Certificate>)> = Vec::new();
            for c in &keys.pinned_certs {
                let k = c
                    .key()
                    .map_err(|e| Verdict::refused("unsupported-key", e.to_string()))?;
                candidates.push((k.clone(), Some(c)));
            }
            candidates.extend(keys.pinned_keys.iter().map(|k| (k.clone(), None)));
            let (k, c) = self.pick(&signed, candidates, "the pinned key")?;
            (k, c.cloned(), KeySource::Pinned)
        } else if !keys.trust.anchors().is_empty() {
            if key_info.certs.is_empty() {
                return Err(Verdict::untrusted(
                    "no-certificate",
                    "KeyInfo carries no X509Certificate to build a path to a trust anchor",
                ));
            }
            let candidates = key_info
                .leaf_candidates()
                .into_iter()
                .map(|c| c.key().map(|k| (k.clone(), Some(c))))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Verdict::refused("unsupported-key", e.to_string()))?;
            let (k, c) = self.pick(&signed, candidates, "the certificate in KeyInfo")?;
            (k, c.cloned(), KeySource::TrustedChain)
        } else if keys.insecure {
            let mut candidates: Vec<(PublicKey, Option<&Certificate>)> = Vec::new();
            for c in key_info.leaf_candidates() {
                let k = c
                    .key()
                    .map_err(|e| Verdict::refused("unsupported-key", e.to_string()))?;
                candidates.push((k.clone(), Some(c)));
            }
            candidates.extend(key_info.keys.iter().map(|k| (k.clone(), None)));
            if candidates.is_empty() {
                return Err(Verdict::refused(
                    "unsupported-key",
                    key_info
                        .problem
                        .clone()
                        .unwrap_or_else(|| "KeyInfo carries no usable key".into()),
                ));
            }
            let (k, c) = self.pick(&signed, candidates, "the key in KeyInfo")?;
            // No path is validated, but a chain presented with legacy algorithms or key
            // sizes is still legacy.
            for cert in &key_info.certs {
                for l in cert.legacy_features() {
                    self.legacy(l, "a certificate in KeyInfo")?;
                }
            }
            (k, c.cloned(), KeySource::Insecure)
        } else {
            return Err(Verdict::untrusted(
                "no-trust-source",
                "no trust anchor, pinned key or insecure mode: the key cannot be trusted",
            ));
        };
        if let Some(l) = key
            .check_policy(self.policy.allow_legacy)
            .map_err(|e| Verdict::refused("key-policy", e.to_string()))?
        {
            self.legacy(l, "an RSA key under 2048 bits")?;
        }
        crypto::verify(
            &key,
            self.alg,
            EcdsaEncoding::Raw,
            &signed,
            &self.signature_value,
        )
        .map_err(|e| match e {
            PolicyError::Refused(r) => Verdict::refused("unsupported-signature-method", r),
            PolicyError::Invalid(r) => Verdict::invalid("signature-mismatch", r),
        })?;
        timings.signature = started.elapsed();

        let started = crate::clock::monotonic();
        let mut references = Vec::new();
        for (i, plan) in self.plans.iter().enumerate() {
            let mut ctx = ring::digest::Context::new(plan.hash.ring());
            plan.c14n.canonicalize(doc, &plan.set, &mut ctx);
            let actual = ctx.finish();
            if actual.as_ref() != plan.expected.as_slice() {
                let mut f = super::Failure::new(
                    "digest-mismatch",
                    format!(
                        "Reference {i} (URI {:?}, {}) does not match its DigestValue",
                        plan.uri, plan.resolved
                    ),
                );
                f.reference = Some(i);
                f.expected = Some(b64(&plan.expected));
                f.actual = Some(b64(actual.as_ref()));
                return Err(Verdict::Invalid(f));
            }
            references.push(ReferenceReport {
                uri: plan.uri.to_owned(),
                resolved: plan.resolved.clone(),
                transforms: plan.transforms.clone(),
                digest_method: plan.hash.digest_uri().to_owned(),
                digest: b64(actual.as_ref()),
            });
        }

        timings.digest = started.elapsed();

        let started = crate::clock::monotonic();
        let mut chain = Vec::new();
        let mut warnings = Vec::new();
        if source == KeySource::TrustedChain {
            if let Some(leaf) = &cert {
                let path = keys
                    .trust
                    .validate(
                        leaf,
                        &key_info.certs,
                        Purpose::Signer,
                        self.policy.allow_legacy,
                        now,
                    )
                    .map_err(|e| Verdict::untrusted(e.code(), e.to_string()))?;
                chain = path.chain.iter().map(CertInfo::from).collect();
                warnings = path.warnings;
                for l in path.legacy {
                    self.legacy(l, "the certificate path")?;
                }
            }
        }
        let report = Report {
            signature_method: self.alg.uri().to_owned(),
            canonicalization: self.c14n_uri.to_owned(),
            key: key.describe(),
            key_source: source,
            signer: cert.as_ref().map(CertInfo::from),
            chain,
            references,
            legacy: self.legacy,
            warnings,
            authorization: None,
            timings: super::Timings {
                chain: started.elapsed(),
                ..timings
            },
        };
        Ok((report, cert))
    }

    /// The candidate whose signature over SignedInfo verifies, else the first one (whose
    /// verification then produces the verdict).
    fn pick<'k>(
        &self,
        signed: &[u8],
        candidates: Vec<(PublicKey, Option<&'k Certificate>)>,
        what: &str,
    ) -> Step<(PublicKey, Option<&'k Certificate>)> {
        let found = if candidates.len() > 1 {
            candidates.iter().position(|(k, _)| {
                crypto::verify(
                    k,
                    self.alg,
                    EcdsaEncoding::Raw,
                    signed,
                    &self.signature_value,
                )
                .is_ok()
            })
        } else {
            None
        };
        candidates
            .into_iter()
            .nth(found.unwrap_or(0))
            .ok_or_else(|| Verdict::refused("unsupported-key", format!("no usable key in {what}")))
    }
}

/// Whether `ancestor` is `node` or one of its ancestors.
fn is_ancestor(doc: &Document<'_>, ancestor: NodeId, node: NodeId) -> bool {
    let mut at = Some(node);
    while let Some(id) = at {
        if id == ancestor {
            return true;
        }
        at = doc.node(id).parent;
    }
    false
}

/// The Id of an element, by convention (no DTD): `Id`, `ID`, `id`, `xml:id`, `wsu:Id`.
fn element_id<'d>(e: Option<&'d Element<'_>>) -> Option<&'d str> {
    e?.attributes
        .iter()
        .find(|a| is_id_attribute(a))
        .map(|a| a.value.as_ref())
}

fn is_id_attribute(a: &crate::xml::Attribute<'_>) -> bool {
    match a.namespace.as_deref() {
        None => matches!(a.local, "Id" | "ID" | "id"),
        Some(XML_NS) => a.local == "id",
        Some(WSU_NS) => a.local == "Id",
        _ => false,
    }
}

/// The element whose Id (by the same convention as references) is `id`.
pub fn element_by_id(doc: &Document<'_>, id: &str) -> Result<NodeId, String> {
    let ids = ids(doc).map_err(|v| v.to_string())?;
    ids.get(id)
        .copied()
        .ok_or_else(|| format!("no element with Id {id:?}"))
}

/// Every Id in the document; a value used twice is an error (signature wrapping, XSW3).
fn ids<'d>(doc: &'d Document<'_>) -> Step<HashMap<&'d str, NodeId>> {
    let mut out: HashMap<&'d str, NodeId> = HashMap::new();
    for (id, e) in doc.elements() {
        for a in e.attributes.iter().filter(|a| is_id_attribute(a)) {
            match out.insert(a.value.as_ref(), id) {
                Some(prev) if prev != id => {
                    return Err(Verdict::invalid(
                        "duplicate-id",
                        format!("Id {:?} is used by more than one element", a.value),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// What KeyInfo offers.
#[derive(Default)]
struct KeyInfo {
    certs: Vec<Certificate>,
    keys: Vec<PublicKey>,
    problem: Option<String>,
}

impl KeyInfo {
    fn read(doc: &Document<'_>, node: Option<NodeId>) -> Step<KeyInfo> {
        let mut out = KeyInfo::default();
        let Some(node) = node else {
            out.problem = Some("the signature has no KeyInfo".into());
            return Ok(out);
        };
        let b64_of = |id: NodeId, what: &str| {
            decode_base64(&doc.text(id)).ok_or_else(|| malformed(format!("{what} is not base64")))
        };
        for (id, e) in doc.child_elements(node) {
            if e.is(DSIG_NS, "X509Data") {
                for (cid, ce) in doc.child_elements(id) {
                    if ce.is(DSIG_NS, "X509Certificate") {
                        let cert = Certificate::from_text_cached(
                            &doc.text(cid),
                            |t| {
                                decode_base64(t)
                                    .ok_or_else(|| malformed("X509Certificate is not base64"))
                            },
                            |e| malformed(format!("X509Certificate: {e}")),
                        )?;
                        out.certs.push(cert);
                    }
                }
            } else if e.is(DSIG_NS, "KeyValue") {
                for (kid, ke) in doc.child_elements(id) {
                    let key = if ke.is(DSIG_NS, "RSAKeyValue") {
                        let mut n = None;
                        let mut x = None;
                        for (pid, pe) in doc.child_elements(kid) {
                            if pe.is(DSIG_NS, "Modulus") {
                                n = Some(b64_of(pid, "Modulus")?);
                            } else if pe.is(DSIG_NS, "Exponent") {
                                x = Some(b64_of(pid, "Exponent")?);
                            }
                        }
                        match (n, x) {
                            (Some(n), Some(x)) => PublicKey::rsa(&n, &x),
                            _ => return Err(malformed("RSAKeyValue lacks Modulus or Exponent")),
                        }
                    } else if ke.is(DSIG11_NS, "ECKeyValue") {
                        let mut curve = None;
                        let mut point = None;
                        for (pid, pe) in doc.child_elements(kid) {
                            if pe.is(DSIG11_NS, "NamedCurve") {
                                curve = pe
                                    .attribute("URI")
                                    .map(|u| u.trim_start_matches("urn:oid:"));
                            } else if pe.is(DSIG11_NS, "PublicKey") {
                                point = Some(b64_of(pid, "ECKeyValue/PublicKey")?);
                            }
                        }
                        match (curve, point) {
                            (Some(c), Some(p)) => PublicKey::ec(c, &p),
                            _ => Err(crypto::KeyError::Unsupported(
                                "ECKeyValue without a named curve and public key".into(),
                            )),
                        }
                    } else {
                        Err(crypto::KeyError::Unsupported(format!(
                            "key value {}",
                            ke.qname()
                        )))
                    };
                    match key {
                        Ok(k) => out.keys.push(k),
                        Err(e) => out.problem = Some(e.to_string()),
                    }
                }
            } else if e.is(DSIG11_NS, "DEREncodedKeyValue") {
                match PublicKey::from_spki_der(&b64_of(id, "DEREncodedKeyValue")?) {
                    Ok(k) => out.keys.push(k),
                    Err(e) => out.problem = Some(e.to_string()),
                }
            }
        }
        Ok(out)
    }

    /// Certificates that issued none of the others: the signer is among them.
    fn leaf_candidates(&self) -> Vec<&Certificate> {
        let leaves: Vec<&Certificate> = self
            .certs
            .iter()
            .filter(|c| {
                !self
                    .certs
                    .iter()
                    .any(|o| o.der() != c.der() && o.issuer == c.subject)
            })
            .collect();
        if leaves.is_empty() {
            self.certs.iter().collect()
        } else {
            leaves
        }
    }
}
