# Sourced by scripts/test and scripts/devnet: make sure .venv exists and holds
# this project with its test extras, reinstalling only when pyproject.toml changed.
VENV="${TOYCHAIN_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating $VENV ..." >&2
    python3 -m venv "$VENV"
fi
stamp="$VENV/.toychain-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing toychain and its test dependencies into $VENV ..." >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet -e '.[test]' >&2
    echo "$want" > "$stamp"
fi
