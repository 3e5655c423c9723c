#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the end-to-end tests (root, netns).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export XVS_BIN_DIR="$PWD/target/release"
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
echo "== tests"
cargo test --release --workspace -- --test-threads="${XVS_TEST_THREADS:-2}"
echo "== all tests passed"
