#!/usr/bin/env bash
# A SMART Backend Services client in a shell script (needs bash, openssl and curl), for
# trying oxifhir's --auth smart by hand.
#
#   tools/smart-token.sh keygen KEY.pem KID
#       Makes an RSA 2048 private key in KEY.pem and prints its public JWK (for RS384): put
#       it in the client's "keys" in the --auth-config file.
#   tools/smart-token.sh token TOKEN_URL CLIENT_ID KEY.pem KID SCOPE
#       Signs a client assertion (RS384, five-minute expiry, fresh jti), exchanges it at
#       TOKEN_URL and prints the token response (JSON).
set -euo pipefail

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

hex_to_bytes() { printf '%b' "$(sed 's/../\\x&/g')"; }

case "${1:-}" in
keygen)
    [ $# -eq 3 ] || { echo "usage: $0 keygen KEY.pem KID" >&2; exit 2; }
    key=$2 kid=$3
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null
    chmod 600 "$key"
    n=$(openssl rsa -in "$key" -noout -modulus | cut -d= -f2 | hex_to_bytes | b64url)
    printf '{"kty":"RSA","kid":"%s","alg":"RS384","use":"sig","e":"AQAB","n":"%s"}\n' "$kid" "$n"
    ;;
token)
    [ $# -eq 6 ] || { echo "usage: $0 token TOKEN_URL CLIENT_ID KEY.pem KID SCOPE" >&2; exit 2; }
    url=$2 client=$3 key=$4 kid=$5 scope=$6
    header=$(printf '{"alg":"RS384","typ":"JWT","kid":"%s"}' "$kid" | b64url)
    claims=$(printf '{"iss":"%s","sub":"%s","aud":"%s","exp":%d,"jti":"%s"}' \
        "$client" "$client" "$url" $(($(date +%s) + 300)) "$(openssl rand -hex 16)" | b64url)
    signature=$(printf '%s' "$header.$claims" | openssl dgst -sha384 -sign "$key" -binary | b64url)
    curl -sS -X POST "$url" \
        --data-urlencode grant_type=client_credentials \
        --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
        --data-urlencode "client_assertion=$header.$claims.$signature" \
        --data-urlencode "scope=$scope"
    echo
    ;;
*)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
