#!/bin/sh
# Makes the fixtures of test/saml: two self-signed RSA-2048 key pairs, valid
# for 50 years. sp.key/sp.crt are the request-signing key of the service
# provider registered with certificate_file; other.key/other.crt are an
# unrelated key whose signatures idbridge must refuse.
# Run from this folder: ./gen.sh
set -eu
for n in sp other; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 18262 -sha256 \
    -subj "/CN=idbridge test $n" -keyout $n.key -out $n.crt 2>/dev/null
done
