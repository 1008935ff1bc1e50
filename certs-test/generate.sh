#!/bin/sh
# Regenerates the committed test PKI with OpenSSL. TEST KEYS ONLY: every private key here is
# public and must never protect anything real.
#
# Not run by the tests: the files are committed so that every run sees the same certificates,
# and every validity period and CRL date is fixed (see README.md). Run from anywhere:
#   sh certs-test/generate.sh
# The layout is a contract (the hub's embedded defaults, the docs and outside checks use it);
# README.md describes each file.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf crl hub agencies bad signers
mkdir -p crl hub agencies bad signers

from=20260101000000Z
until=20360101000000Z

rsa() { openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1.key" 2>/dev/null; }
ec() { openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$1.key"; }

# `openssl ca` is the tool that sets explicit validity dates (x509 -req cannot, before 3.4)
# and writes CRLs with explicit lastUpdate/nextUpdate.
mkdir -p "$tmp/db"
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = $tmp/db/index.txt
new_certs_dir = $tmp/db
serial = $tmp/db/serial
crlnumber = $tmp/db/crlnumber
policy = any
unique_subject = no
copy_extensions = none
preserve = yes
default_md = sha256
crl_extensions = crl_ext
[any]
countryName = optional
organizationName = optional
organizationalUnitName = optional
serialNumber = optional
commonName = supplied
[crl_ext]
authorityKeyIdentifier = keyid:always
CNF

# issue OUT KEY SUBJECT ISSUER(self for a root) START END DIGEST EXTENSIONS...
# Writes the certificate alone to OUT; extensions are given one per argument.
issue() {
    out=$1 key=$2 subj=$3 issuer=$4 start=$5 end=$6 md=$7
    shift 7
    : > "$tmp/db/index.txt"
    openssl rand -hex 8 > "$tmp/db/serial"
    printf '[ext]\n' > "$tmp/ext.cnf"
    for e in "$@"; do printf '%s\n' "$e" >> "$tmp/ext.cnf"; done
    openssl req -new -utf8 -key "$key" -subj "$subj" -out "$tmp/req.csr"
    if [ "$issuer" = self ]; then
        signer="-selfsign -keyfile $key"
    else
        signer="-cert $issuer.pem -keyfile $issuer.key"
    fi
    # shellcheck disable=SC2086
    openssl ca -batch -utf8 -config "$tmp/ca.cnf" $signer -extfile "$tmp/ext.cnf" -extensions ext \
        -md "$md" -startdate "$start" -enddate "$end" -in "$tmp/req.csr" -out "$out" -notext \
        2>/dev/null
}

# chain LEAF ISSUERS...: appends the issuing chain (root excluded) to LEAF.pem
chain() {
    leaf=$1
    shift
    for c in "$@"; do openssl x509 -in "$c.pem" >> "$leaf.pem"; done
}

CA="basicConstraints=critical,CA:TRUE"
CA_KU="keyUsage=critical,keyCertSign,cRLSign"
SKI="subjectKeyIdentifier=hash"
AKI="authorityKeyIdentifier=keyid"
LEAF="basicConstraints=critical,CA:FALSE"
SIGN_KU="keyUsage=critical,digitalSignature,nonRepudiation"
TLS_KU="keyUsage=critical,digitalSignature"
CLIENT="extendedKeyUsage=clientAuth"
PKI="/C=VN/O=truc test PKI"

# --- the anchor and the issuing CA (pathLen 0: it issues end entities only) ---
rsa root-ca 2048
issue root-ca.pem root-ca.key "$PKI/CN=truc Test Root CA" self $from 20460101000000Z sha256 \
    "$CA" "$CA_KU" "$SKI"
rsa intermediate-ca 2048
issue intermediate-ca.pem intermediate-ca.key "$PKI/CN=truc Test Issuing CA" root-ca \
    $from 20451231000000Z sha256 "$CA,pathlen:0" "$CA_KU" "$SKI" "$AKI"
I=intermediate-ca

# --- the hub ---
ec hub/tls P-256
issue hub/tls.pem hub/tls.key "$PKI/OU=truc hub/CN=localhost" $I $from $until sha256 \
    "$LEAF" "$TLS_KU" "extendedKeyUsage=serverAuth" "$SKI" "$AKI" \
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
chain hub/tls $I
ec hub/receipt P-256
issue hub/receipt.pem hub/receipt.key "$PKI/OU=truc hub/CN=truc hub receipts" $I $from $until \
    sha256 "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain hub/receipt $I

# --- agencies: each binds its identifier a different way (see directory.toml) ---
# agency ID NAME KEYTYPE(rsa|ec) DIGEST DN-EXTRA SAN...
agency() {
    id=$1 name=$2 kind=$3 md=$4 dn=$5
    shift 5
    d=agencies/$id
    mkdir -p "$d"
    for role in sign client; do
        if [ "$kind" = rsa ]; then rsa "$d/$role" 2048; else ec "$d/$role" P-256; fi
    done
    issue "$d/sign.pem" "$d/sign.key" "/C=VN/O=$name$dn/CN=$name (ký văn bản)" $I $from $until \
        "$md" "$LEAF" "$SIGN_KU" "$SKI" "$AKI" "$@"
    chain "$d/sign" $I
    issue "$d/client.pem" "$d/client.key" "/C=VN/O=$name$dn/CN=$name (hệ thống QLVB)" $I $from \
        $until sha256 "$LEAF" "$TLS_KU" "$CLIENT" "$SKI" "$AKI" "$@"
    chain "$d/client" $I
    openssl rand -hex 32 > "$d/token"
}
agency 000.00.00.G12 "Bộ Tài chính" rsa sha256 "/serialNumber=000.00.00.G12"
agency 000.00.00.H29 "UBND Thành phố Hồ Chí Minh" ec sha256 "/OU=000.00.00.H29"
agency 000.00.00.H41 "UBND tỉnh Nghệ An" rsa sha256 "" \
    "subjectAltName=URI:urn:truc:agency:000.00.00.H41"
# Like the national CA's certificates in the field: sha1WithRSA.
agency 000.00.00.G22 "Văn phòng Chính phủ" rsa sha1 "/serialNumber=000.00.00.G22"

# --- extra document signers for algorithm coverage ---
rsa signers/rsa4096 4096
issue signers/rsa4096.pem signers/rsa4096.key "$PKI/CN=Signer RSA-4096" $I $from $until sha256 \
    "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain signers/rsa4096 $I
ec signers/p384 P-384
issue signers/p384.pem signers/p384.key "$PKI/CN=Signer P-384" $I $from $until sha384 \
    "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain signers/p384 $I
rsa signers/rsa1024 1024
issue signers/rsa1024.pem signers/rsa1024.key "$PKI/CN=Signer RSA-1024 SHA-1" $I $from $until \
    sha1 "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain signers/rsa1024 $I

# --- bad certificates, one per failure class ---
bad() { # bad NAME SUBJECT-CN ISSUER START END EXTENSIONS...
    n=$1 cn=$2 issuer=$3 start=$4 end=$5
    shift 5
    rsa "bad/$n" 2048
    issue "bad/$n.pem" "bad/$n.key" "$PKI/CN=$cn" "$issuer" "$start" "$end" sha256 "$@"
}
bad expired "Signer expired in 2021" $I 20200101000000Z 20210101000000Z \
    "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain bad/expired $I
bad not-yet-valid "Signer valid from 2030" $I 20300101000000Z $until "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain bad/not-yet-valid $I
bad revoked "Signer revoked on 2026-06-01" $I $from $until "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain bad/revoked $I
bad wrong-key-usage "Signer with keyEncipherment only" $I $from $until \
    "$LEAF" "keyUsage=critical,keyEncipherment" "$SKI" "$AKI"
chain bad/wrong-key-usage $I
bad critical-extension "Signer with an unknown critical extension" $I $from $until \
    "$LEAF" "$SIGN_KU" "$SKI" "$AKI" "1.3.6.1.4.1.99999.1=critical,ASN1:UTF8String:unknown"
chain bad/critical-extension $I
# An unrelated CA and a signer under it.
bad unknown-ca "Unrelated CA" self $from 20460101000000Z "$CA" "$CA_KU" "$SKI"
bad unknown-issuer "Signer under an unrelated CA" bad/unknown-ca $from $until \
    "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain bad/unknown-issuer bad/unknown-ca
# A self-signed root with the real root's DN (and its own key), and a signer under it.
bad rogue-root "truc Test Root CA" self $from 20460101000000Z "$CA" "$CA_KU" "$SKI"
bad rogue-signer "Signer under the rogue root" bad/rogue-root $from $until \
    "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain bad/rogue-signer bad/rogue-root
# A CA under the issuing CA, whose pathLen 0 forbids it, and a signer under that CA.
bad pathlen-ca "CA below a pathLen 0 CA" $I $from 20451231000000Z "$CA" "$CA_KU" "$SKI" "$AKI"
bad pathlen "Signer two CAs below the root" bad/pathlen-ca $from $until \
    "$LEAF" "$SIGN_KU" "$SKI" "$AKI"
chain bad/pathlen bad/pathlen-ca $I

# --- CRLs of the issuing CA ---
# crl INDEX-LINES LASTUPDATE NEXTUPDATE OUT FORMAT
crl() {
    printf '%b' "$1" > "$tmp/db/index.txt"
    openssl ca -batch -config "$tmp/ca.cnf" -gencrl -cert $I.pem -keyfile $I.key \
        -crl_lastupdate "$2" -crl_nextupdate "$3" -out "$tmp/crl.pem" 2>/dev/null
    openssl crl -in "$tmp/crl.pem" -outform "$5" -out "$4"
}
serial=$(openssl x509 -in bad/revoked.pem -noout -serial | cut -d= -f2)
subject=$(openssl x509 -in bad/revoked.pem -noout -subject -nameopt compat | sed 's/^subject=//')
echo 01 > "$tmp/db/crlnumber"
# Issued 2026-01-01, due 2026-02-01: stale after that. Lists nothing.
crl "" 20260101000000Z 20260201000000Z crl/intermediate-ca-stale.crl DER
# Current: revokes bad/revoked as of 2026-06-01 (keyCompromise).
crl "R\t360101000000Z\t260601000000Z,keyCompromise\t$serial\tunknown\t$subject\n" \
    20261101000000Z 20360101000000Z crl/intermediate-ca.crl PEM

# --- the demo agency directory (see README.md) ---
fp() { openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1; }
token_hash() { tr -d '\n' < "agencies/$1/token" | openssl dgst -sha256 -r | cut -d' ' -f1; }
entry() { # entry ID NAME [LINES]: LINES (delivery settings) follow the token
    printf '\n[[agency]]\nid = "%s"\nname = "%s"\ntoken_sha256 = "%s"\n%s' "$1" "$2" "$(token_hash "$1")" "${3:-}"
}
{
    cat <<TOML
# Demo agency directory for the test PKI in certs-test/. TEST ONLY: the tokens and keys it
# refers to are public. Regenerated by certs-test/generate.sh.
#
# Who may sign for an agency: by default a certificate (under a trusted anchor) whose subject
# serialNumber or OU, or a subjectAltName URI urn:truc:agency:<id>, is the agency identifier.
# The same rules map TLS client certificates to agencies.
#
# Delivery: G12, H29 and G22 pull from their inbox (the default); H41 is pushed to, at a demo
# receiver on https://127.0.0.1:8445/inbox, trusted through the hub's anchors (no push_ca).
# Policy: signatures required everywhere; G22 signs like the national CA (RSA-SHA1 on a
# sha1WithRSA certificate), so legacy algorithms are allowed for it.

[defaults.signers]
subject = ["serialNumber", "OU"]
san_uri = "urn:truc:agency:{id}"

[defaults.clients]
subject = ["serialNumber", "OU"]
san_uri = "urn:truc:agency:{id}"
TOML
    pull='delivery = "pull"
'
    entry 000.00.00.G12 "Bộ Tài chính" "$pull"
    entry 000.00.00.H29 "UBND Thành phố Hồ Chí Minh" "$pull"
    entry 000.00.00.H41 "UBND tỉnh Nghệ An" '# A demo receiver (not a real agency system): see the README for how to start one.
delivery = "push"
push_url = "https://127.0.0.1:8445/inbox"
'
    entry 000.00.00.G22 "Văn phòng Chính phủ" "$pull"
    cat <<TOML

# Like certificates from the national CA, which carry no agency identifier: pinned.
[agency.signers]
fingerprints = ["$(fp agencies/000.00.00.G22/sign.pem)"]

[agency.policy]
allow_legacy = true
TOML
} > directory.toml

echo "generated in $(pwd)"
