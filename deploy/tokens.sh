#!/bin/sh
# One new bearer token, as both Secrets that hold it: stepd's `stepd-tokens` (namespace
# stepd; the line `<project>:<token>`, so that stepd's logs name the caller) and the Kargo
# project's `stepd-token` (key `token`, what examples/kargo/promotion-task.yaml sends).
# It prints the two Secrets and applies nothing; the token appears in no command line:
#
#   deploy/tokens.sh kargo-demo | kubectl apply -f -
#
# KEEP, a file of token lines, keeps them in stepd-tokens before the new one: how a second
# project is added or a token rotated (docs/OPERATIONS.md, "Tokens").
set -eu
usage="usage: deploy/tokens.sh KARGO-PROJECT [KEEP]"
project="${1:?$usage}"
keep="${2:-/dev/null}"
case "$project" in
  *[!A-Za-z0-9._-]* | [!A-Za-z0-9]*) echo "deploy/tokens.sh: $project is not a caller name" >&2; exit 2 ;;
esac
[ -r "$keep" ] || { echo "deploy/tokens.sh: cannot read $keep" >&2; exit 2; }

umask 077
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
token="$(openssl rand -hex 32)"
{ grep -v '^[[:space:]]*$' "$keep" || true; printf '%s:%s\n' "$project" "$token"; } > "$dir/tokens"
printf '%s' "$token" > "$dir/token"

kubectl create secret generic stepd-tokens --namespace stepd \
  --from-file=tokens="$dir/tokens" --dry-run=client --output yaml
echo ---
kubectl create secret generic stepd-token --namespace "$project" \
  --from-file=token="$dir/token" --dry-run=client --output yaml
