#!/usr/bin/env bash
# End-to-end check of the harness with curl only (no browser):
#   bash tests/harness/smoke.sh [PORT]        (default 41100; uses PORT, PORT+1, PORT+2)
# Starts idp.mjs, runs a full login, token exchange, refresh rotation, refresh reuse,
# introspection, userinfo, big-claim login, every fault mode, key rotation; stops it.
set -euo pipefail

PORT=${1:-41100}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
ISS="http://127.0.0.1:$PORT"
CTL="http://127.0.0.1:$((PORT + 2))"
REDIRECT="http://127.0.0.1:8787/bff/callback"
BASIC="bff:bff-secret"
IDP_PID=

cleanup() {
  if [ -n "$IDP_PID" ]; then kill "$IDP_PID" 2>/dev/null || true; wait "$IDP_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ok() { printf '  ok   %s\n' "$*"; }
die() { { printf '  FAIL %s\n' "$*"; echo "--- idp stderr:"; cat "$WORK/idp.err"; } >&2; exit 1; }
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }
jwt_payload() { python3 -c 'import json,sys,base64; p=sys.argv[1].split(".")[1]; p+="="*(-len(p)%4); print(json.dumps(json.loads(base64.urlsafe_b64decode(p))))' "$1"; }
header() { grep -i "^$1:" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

cat > "$WORK/config.json" <<EOF
{ "port": $PORT, "access_token_ttl": 10,
  "clients": [ { "client_id": "bff", "client_secret": "bff-secret",
                 "token_endpoint_auth_method": "client_secret_basic",
                 "redirect_uris": ["$REDIRECT"],
                 "post_logout_redirect_uris": ["http://127.0.0.1:8787/"] } ] }
EOF

echo "== start"
T0=$(date +%s%N)
node "$HERE/idp.mjs" --config "$WORK/config.json" > "$WORK/idp.out" 2> "$WORK/idp.err" &
IDP_PID=$!
for _ in $(seq 1 100); do grep -q '^READY ' "$WORK/idp.out" 2>/dev/null && break; sleep 0.05; done
grep -q '^READY ' "$WORK/idp.out" || die "no READY line"
echo "  $(cat "$WORK/idp.out")  (after $(( ($(date +%s%N) - T0) / 1000000 )) ms)"
[ "$(wc -l < "$WORK/idp.out")" = 1 ] || die "stdout has more than the READY line"

echo "== discovery through the proxy"
DISC=$(curl -sf "$ISS/.well-known/openid-configuration")
[ "$(echo "$DISC" | json 'd["issuer"]')" = "$ISS" ] || die issuer
for k in authorization_endpoint token_endpoint userinfo_endpoint jwks_uri end_session_endpoint \
         revocation_endpoint introspection_endpoint; do
  case "$(echo "$DISC" | json "d['$k']")" in "$ISS"/*) ;; *) die "$k not on the proxy";; esac
done
[ "$(echo "$DISC" | json 'd["authorization_response_iss_parameter_supported"]')" = True ] || die iss_param
ok "issuer and endpoints on $ISS; iss parameter advertised; algs $(echo "$DISC" | json 'd["id_token_signing_alg_values_supported"]')"

# login LOGIN SCOPE -> prints the code; leaves cookies in $WORK/jar
login() {
  local who=$1 scope=$2 verifier=$3 challenge loc page
  challenge=$(printf '%s' "$verifier" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
  rm -f "$WORK/jar"
  local c=(-s -o /dev/null -D - -c "$WORK/jar" -b "$WORK/jar")
  # 1. authorization request -> 303 /interaction/<uid>
  loc=$(curl "${c[@]}" -G "$ISS/auth" --data-urlencode client_id=bff --data-urlencode response_type=code \
        --data-urlencode "scope=$scope" --data-urlencode prompt=consent --data-urlencode "redirect_uri=$REDIRECT" \
        --data-urlencode state=s123 --data-urlencode nonce=n123 --data-urlencode "code_challenge=$challenge" \
        --data-urlencode code_challenge_method=S256 | header location)
  [[ $loc == /interaction/* ]] || die "auth -> $loc"
  # 2. login form
  page=$(curl -sf -b "$WORK/jar" "$ISS$loc") || die "login page"
  [[ $page == *'name="login"'* ]] || die "no login form"
  loc=$(curl "${c[@]}" -X POST "$ISS$loc" --data-urlencode prompt=login --data-urlencode "login=$who" \
        --data-urlencode password=x | header location)
  [[ $loc == "$ISS/auth/"* ]] || die "login post -> $loc"
  # 3. resume -> 303 /interaction/<uid2> (consent)
  loc=$(curl "${c[@]}" "$loc" | header location)
  [[ $loc == /interaction/* ]] || die "resume -> $loc"
  page=$(curl -sf -b "$WORK/jar" "$ISS$loc") || die "consent page"
  [[ $page == *'value="consent"'* ]] || die "no consent form"
  loc=$(curl "${c[@]}" -X POST "$ISS$loc" --data-urlencode prompt=consent | header location)
  [[ $loc == "$ISS/auth/"* ]] || die "consent post -> $loc"
  # 4. resume -> 303 redirect_uri?code&state&iss
  loc=$(curl "${c[@]}" "$loc" | header location)
  [[ $loc == "$REDIRECT?"* ]] || die "final -> $loc"
  echo "$loc"
}

echo "== login alice"
VERIFIER=$(openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n')
CB=$(login alice "openid profile email offline_access" "$VERIFIER")
CODE=$(python3 -c 'import sys,urllib.parse as u; q=dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query)); print(q["code"]); assert q["state"]=="s123"; assert q["iss"]==sys.argv[2]' "$CB" "$ISS") || die "callback params"
ok "callback $CB"

echo "== code exchange (client_secret_basic + code_verifier)"
TOK=$(curl -sf -u "$BASIC" "$ISS/token" -d grant_type=authorization_code --data-urlencode "code=$CODE" \
      --data-urlencode "redirect_uri=$REDIRECT" --data-urlencode "code_verifier=$VERIFIER") || die "token exchange"
AT=$(echo "$TOK" | json 'd["access_token"]'); RT1=$(echo "$TOK" | json 'd["refresh_token"]'); IDT=$(echo "$TOK" | json 'd["id_token"]')
ok "expires_in=$(echo "$TOK" | json 'd["expires_in"]') scope='$(echo "$TOK" | json 'd["scope"]')'"
ok "id_token: $(jwt_payload "$IDT")"
[[ $(jwt_payload "$IDT") == *userinfo_only* ]] && die "userinfo_only leaked into the ID token"
UI=$(curl -sf -H "Authorization: Bearer $AT" "$ISS/me") || die userinfo
ok "userinfo: $UI"
[[ $UI == *'"userinfo_only":"from-userinfo"'* ]] || die "userinfo_only missing"

echo "== PKCE is enforced"
ST=$(curl -s -o /dev/null -w '%{http_code}' -u "$BASIC" "$ISS/token" -d grant_type=authorization_code \
     --data-urlencode "code=$CODE" --data-urlencode "redirect_uri=$REDIRECT")
ok "replayed code without verifier -> $ST"

echo "== refresh (rotation)"
R=$(curl -sf -u "$BASIC" "$ISS/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$RT1") || die refresh
RT2=$(echo "$R" | json 'd["refresh_token"]')
[ "$RT1" != "$RT2" ] || die "refresh token not rotated"
ok "new refresh token issued"
INTRO=$(curl -sf -u "$BASIC" "$ISS/token/introspection" --data-urlencode "token=$RT2")
ok "introspect RT2: $INTRO"
[ "$(echo "$INTRO" | json 'd["active"]')" = True ] || die "RT2 inactive"
R=$(curl -s -u "$BASIC" "$ISS/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$RT1")
[ "$(echo "$R" | json 'd["error"]')" = invalid_grant ] || die "reuse: $R"
ok "reuse of RT1 -> $R"
INTRO=$(curl -sf -u "$BASIC" "$ISS/token/introspection" --data-urlencode "token=$RT2")
[ "$(echo "$INTRO" | json 'd["active"]')" = False ] || die "RT2 survived the reuse"
ok "RT2 after reuse (grant revoked): $INTRO"
C=$(curl -sf "$CTL/counts"); ok "counts $C"
[ "$C" = '{"authorization_code":1,"refresh_token":1,"grant_error":2,"revocation":0,"backchannel_success":0,"backchannel_error":0}' ] || die counts
ok "refresh-tokens $(curl -sf "$CTL/refresh-tokens")"

echo "== second login, revocation"
VERIFIER=$(openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n')
CB=$(login bob "openid profile offline_access" "$VERIFIER")
CODE=$(python3 -c 'import sys,urllib.parse as u; print(dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query))["code"])' "$CB")
RT=$(curl -sf -u "$BASIC" "$ISS/token" -d grant_type=authorization_code --data-urlencode "code=$CODE" \
     --data-urlencode "redirect_uri=$REDIRECT" --data-urlencode "code_verifier=$VERIFIER" | json 'd["refresh_token"]')
ST=$(curl -s -o /dev/null -w '%{http_code}' -u "$BASIC" "$ISS/token/revocation" --data-urlencode "token=$RT" -d token_type_hint=refresh_token)
[ "$ST" = 200 ] || die "revocation $ST"
ok "revocation -> 200; counts $(curl -sf "$CTL/counts")"
curl -sf "$CTL/refresh-tokens" | python3 -c 'import json,sys; [print("      ", t["client_id"], t["account_id"], "consumed" if t["consumed"] else "-", "revoked" if t["revoked"] else "-", t["value"][:8]+"...") for t in json.load(sys.stdin)]'

echo "== big claim"
VERIFIER=$(openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n')
CB=$(login big-3000 "openid profile" "$VERIFIER")
CODE=$(python3 -c 'import sys,urllib.parse as u; print(dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query))["code"])' "$CB")
TOK=$(curl -sf -u "$BASIC" "$ISS/token" -d grant_type=authorization_code --data-urlencode "code=$CODE" \
      --data-urlencode "redirect_uri=$REDIRECT" --data-urlencode "code_verifier=$VERIFIER")
[ "$(echo "$TOK" | json '"refresh_token" in d')" = False ] || die "refresh token without offline_access"
IDT=$(echo "$TOK" | json 'd["id_token"]')
ok "no refresh token without offline_access; big_claim length $(jwt_payload "$IDT" | json 'len(d["big_claim"])'), id_token ${#IDT} bytes"

echo "== carol (kept for the state checks below)"
VERIFIER=$(openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n')
CB=$(login carol "openid offline_access" "$VERIFIER")
CODE=$(python3 -c 'import sys,urllib.parse as u; print(dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query))["code"])' "$CB")
RTC=$(curl -sf -u "$BASIC" "$ISS/token" -d grant_type=authorization_code --data-urlencode "code=$CODE" \
      --data-urlencode "redirect_uri=$REDIRECT" --data-urlencode "code_verifier=$VERIFIER" | json 'd["refresh_token"]')
ok "carol has a refresh token"

echo "== fault modes"
curl -sf -X POST "$CTL/fault?mode=refuse" >/dev/null
set +e; curl -s -m 2 -o /dev/null "$ISS/jwks"; RC=$?; set -e
[ $RC = 7 ] || die "refuse: curl rc $RC"; ok "refuse -> curl exit 7 (connection refused)"
curl -sf -X POST "$CTL/fault?mode=500" >/dev/null
ST=$(curl -s -o "$WORK/b" -w '%{http_code}' "$ISS/jwks"); [ "$ST" = 500 ] || die "500: $ST"
ok "500 -> $ST $(cat "$WORK/b")"
curl -sf -X POST "$CTL/fault?mode=hang" >/dev/null
set +e; curl -s -m 2 -o /dev/null "$ISS/jwks"; RC=$?; set -e
[ $RC = 28 ] || die "hang: curl rc $RC"; ok "hang -> curl exit 28 (timeout after 2 s)"
curl -sf -X POST "$CTL/fault?mode=pass" >/dev/null
INTRO=$(curl -sf -u "$BASIC" "$ISS/token/introspection" --data-urlencode "token=$RTC")
[ "$(echo "$INTRO" | json 'd["active"]')" = True ] || die "state lost: $INTRO"
ok "pass again; provider kept its state (carol's refresh token active)"

echo "== key rotation"
OLD=$(curl -sf "$ISS/jwks" | json '[k["kid"] for k in d["keys"]]')
NEW=$(curl -sf -X POST "$CTL/rotate-keys" | json 'd["kid"]')
FIRST=$(curl -sf "$ISS/jwks" | json 'd["keys"][0]["kid"]')
[ "$NEW" = "$FIRST" ] || die "rotate"
ok "jwks was $OLD; now starts with $NEW"
R=$(curl -sf -u "$BASIC" "$ISS/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$RTC") || die "refresh after rotation"
KID=$(python3 -c 'import json,sys,base64; p=sys.argv[1].split(".")[0]; p+="="*(-len(p)%4); print(json.loads(base64.urlsafe_b64decode(p))["kid"])' "$(echo "$R" | json 'd["id_token"]')")
[ "$KID" = "$NEW" ] || die "id_token kid $KID"
ok "state survives rotation; carol's refresh works and the new ID token has kid $KID"

echo "== shutdown"
kill -TERM "$IDP_PID"; wait "$IDP_PID"; RC=$?; IDP_PID=
[ $RC = 0 ] || die "exit status $RC"; ok "SIGTERM -> exit 0"
echo "ALL OK"
