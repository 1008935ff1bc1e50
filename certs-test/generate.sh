#!/bin/sh
# Regenerates the committed test PKI with OpenSSL. Not run by the tests: the files are
# committed so that every run sees the same certificates. Run from anywhere:
#   sh certs-test/generate.sh
# Layout:
#   root-ca       RSA-2048 self-signed anchor (20 years)
#   inter-ca      RSA-2048 intermediate under root-ca
#   rsa2048, rsa4096, p256, p384
#                 document signers under inter-ca (digitalSignature, nonRepudiation)
#   legacy-rsa1024  RSA-1024 signer, certificate signed with sha1WithRSA (legacy policy)
#   expired       RSA-2048 signer valid 2020-01-01 .. 2021-01-01
#   other-ca, other-signer  an unrelated CA and a signer under it (unknown issuer)
# Every *.key is PKCS#8 PEM; every *.pem is one certificate.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ca_ext="basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash"
leaf_ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
printf '%s\n' "$ca_ext" > "$tmp/ca.ext"
printf '%s\n' "$leaf_ext" > "$tmp/leaf.ext"

rsa() { openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1.key" 2>/dev/null; }
ec() { openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$1.key"; }

# `openssl ca` is the tool that sets explicit validity dates (x509 -req cannot, before 3.4).
mkdir -p "$tmp/ca"
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = $tmp/ca/index.txt
new_certs_dir = $tmp/ca
serial = $tmp/ca/serial
policy = any
unique_subject = no
copy_extensions = none
[any]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
[ca_ext]
$ca_ext
[leaf_ext]
$leaf_ext
CNF

# issue NAME SUBJECT ISSUER(self for a root) EXTENSIONS START END [DIGEST]
issue() {
    : > "$tmp/ca/index.txt"
    openssl rand -hex 8 > "$tmp/ca/serial"
    openssl req -new -key "$1.key" -subj "$2" -out "$tmp/$1.csr"
    if [ "$3" = self ]; then
        signer="-selfsign -keyfile $1.key"
    else
        signer="-cert $3.pem -keyfile $3.key"
    fi
    # shellcheck disable=SC2086
    openssl ca -batch -config "$tmp/ca.cnf" $signer -extensions "$4" -md "${7:-sha256}" \
        -startdate "$5" -enddate "$6" -in "$tmp/$1.csr" -out "$1.pem" -notext 2>/dev/null
}

from=20260101000000Z
rsa root-ca 2048
issue root-ca "/C=VN/O=truc test PKI/CN=truc Test Root CA" self ca_ext $from 20460101000000Z
rsa inter-ca 2048
issue inter-ca "/C=VN/O=truc test PKI/CN=truc Test Issuing CA" root-ca ca_ext $from 20451231000000Z

rsa rsa2048 2048
issue rsa2048 "/C=VN/O=Bo Xay dung/OU=000.00.00.G17/CN=Signer RSA-2048" inter-ca leaf_ext $from 20360101000000Z
rsa rsa4096 4096
issue rsa4096 "/C=VN/O=Bo Xay dung/OU=000.00.00.G17/CN=Signer RSA-4096" inter-ca leaf_ext $from 20360101000000Z
ec p256 P-256
issue p256 "/C=VN/O=UBND tinh Ha Nam/OU=000.00.00.H14/CN=Signer P-256" inter-ca leaf_ext $from 20360101000000Z
ec p384 P-384
issue p384 "/C=VN/O=UBND tinh Ha Nam/OU=000.00.00.H14/CN=Signer P-384" inter-ca leaf_ext $from 20360101000000Z
rsa legacy-rsa1024 1024
issue legacy-rsa1024 "/C=VN/O=Legacy CA customer/CN=Signer RSA-1024 SHA-1" inter-ca leaf_ext $from 20360101000000Z sha1
rsa expired 2048
issue expired "/CN=Signer expired in 2021" inter-ca leaf_ext 20200101000000Z 20210101000000Z

rsa other-ca 2048
issue other-ca "/CN=Unrelated CA" self ca_ext $from 20460101000000Z
ec other-signer P-256
issue other-signer "/CN=Signer under an unrelated CA" other-ca leaf_ext $from 20360101000000Z

echo "generated in $(pwd)"
