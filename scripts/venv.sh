# Sourced by scripts/setup.sh and scripts/setup-current.sh (which define say, die and $venv):
# what both set-ups do the same way.

# sparkzoo itself, editable, without dependencies (the lock has them all); again only when
# pyproject.toml changed since it was last installed.
editable() {
  local want have
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  have="$(cat "$venv/.sparkzoo-pyproject" 2>/dev/null || true)"
  [ "$want" = "$have" ] && return 0
  say "installing sparkzoo (editable, no dependencies: the lock has them all)"
  "$venv/bin/python" -m pip --disable-pip-version-check install -q --no-deps --no-build-isolation -e . \
    || die "installing sparkzoo itself failed (see above)"
  echo "$want" > "$venv/.sparkzoo-pyproject"
}
