#!/bin/sh
# Copies infra/edge/router.js into RouterFunction's FunctionCode in infra/template.yaml.
#
# CloudFormation takes a CloudFront Function's code only inline, and neither SAM nor
# `cloudformation package` uploads a file for it. router.js stays the one source (slipway dev
# and the Node tests run it); the template holds a generated copy.
#
#   infra/sync-router.sh          rewrite the copy
#   infra/sync-router.sh --check  exit 1 if the copy differs from router.js (for CI)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
template="$here/template.yaml"
router="$here/edge/router.js"

case "${1:-}" in
  "" | --check) ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# A literal block scalar (`|`) keeps exactly the file's text when the file ends in one newline,
# and its indentation is detected from the first line, which therefore must not be indented.
if [ -n "$(tail -c 1 "$router")" ] || [ -z "$(tail -n 1 "$router")" ]; then
  echo "$router must end with exactly one newline" >&2
  exit 1
fi
case "$(head -n 1 "$router")" in
  " "* | "	"* | "") echo "$router's first line must not be blank or indented" >&2; exit 1 ;;
esac

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT

# Replaces the block under the single `FunctionCode: |` key: every following line that is
# blank or indented deeper than the key belongs to the old copy.
awk -v router="$router" '
  function indent_of(line) { match(line, /^ */); return RLENGTH }
  copying {
    if ($0 == "" || indent_of($0) > key_indent) next
    copying = 0
  }
  /^ *FunctionCode: \|$/ {
    if (found) { print "more than one FunctionCode block" > "/dev/stderr"; exit 3 }
    found = 1
    key_indent = indent_of($0)
    print
    pad = sprintf("%" (key_indent + 2) "s", "")
    while ((getline line < router) > 0) print (line == "" ? "" : pad line)
    close(router)
    copying = 1
    next
  }
  { print }
  END { if (!found) { print "no `FunctionCode: |` block in the template" > "/dev/stderr"; exit 3 } }
' "$template" > "$rendered"

if [ "${1:-}" = "--check" ]; then
  if ! cmp -s "$rendered" "$template"; then
    echo "infra/template.yaml's RouterFunction code differs from infra/edge/router.js;" >&2
    echo "run infra/sync-router.sh" >&2
    exit 1
  fi
  exit 0
fi

cp "$rendered" "$template"
