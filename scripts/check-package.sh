#!/usr/bin/env bash
# The package as a user gets it: `npm pack`, the tarball installed into an empty project, imported
# from plain node and from TypeScript checked by tsc, and its command run with npx. CI runs this
# after the tests; it needs the registry (or npm's cache) for the package's dependencies.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$root"
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
version="$(node -p "require('./package.json').version")"
dev_version() { node -p "require('$root/node_modules/$1/package.json').version"; }

mkdir "$work/app"
cp "$root/scripts/package-check/"{app.mjs,app.ts,tsconfig.json} "$work/app/"
cd "$work/app"
echo '{ "name": "app", "private": true, "type": "module" }' > package.json
# onnxruntime-node's install script fetches its CUDA provider from NuGet on Linux x64; CPU needs none.
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --prefer-offline "$tarball" \
  "typescript@$(dev_version typescript)" "@types/node@$(dev_version @types/node)"

node app.mjs
npx tsc -p tsconfig.json
echo "package-check: tsc accepts app.ts against the package's declarations"
got="$(npx stepwise --version)"
[ "$got" = "$version" ] || { echo "package-check: npx stepwise --version printed '$got', expected $version"; exit 1; }
npx stepwise --help | grep -q 'train' || { echo 'package-check: npx stepwise --help lists no train command'; exit 1; }
echo "package-check: npx stepwise $got and --help run from the installed package"
# A TypeScript config (a scenario) loads through tsx; a bad field is named before any work.
printf "const estimator: string = 'nope';\nexport default { estimator };\n" > config.ts
if npx stepwise train config.ts --db runs.db 2> train.err; then
  echo 'package-check: stepwise train accepted a bad TypeScript config'; exit 1
fi
grep -q "'estimator'" train.err || { cat train.err; echo 'package-check: the TypeScript config was not read'; exit 1; }
echo "package-check: stepwise train reads a TypeScript config"
