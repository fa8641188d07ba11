#!/usr/bin/env bash
# The extension's build and tests without a browser: npm ci, strict TypeScript, eslint
# (no warnings), unit tests (node's test runner), the esbuild bundle and the .vsix.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund --loglevel=error
npx tsc -p . --noEmit
npx eslint --max-warnings 0 src test
npm run -s test:unit
npm run -s package
