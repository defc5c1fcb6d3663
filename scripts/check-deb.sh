#!/usr/bin/env bash
# Builds the .deb from this tree (cargo-deb, installed from the Rust package registry when missing) and checks
# with dpkg-deb that it holds the binary, the unit, the service user, the conffile, the
# mappings and the man page. Uses the already built debug binary so CI does not pay for a
# release build; a release package is `cargo deb`. Usage: scripts/check-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb_version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$cargo_deb_version"; then
  echo "check-deb: installing cargo-deb $cargo_deb_version"
  cargo install cargo-deb --version "$cargo_deb_version" --locked --quiet
fi
[ -x target/debug/siemcast ] || cargo build --locked

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deb="$work/siemcast.deb"
# `--profile dev` packs target/debug/siemcast (cargo-deb warns that it is meant for releases).
cargo deb --profile dev --no-build --fast --output "$deb" >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  echo "check-deb: cargo deb failed" >&2
  exit 1
}
if grep -E "Duplicate|^error" "$work/build.log" >&2; then
  echo "check-deb: cargo deb reported problems" >&2
  exit 1
fi

dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's#^\./#/#' >"$work/files"
expected=(
  /usr/bin/siemcast
  /usr/lib/systemd/system/siemcast.service
  /usr/lib/sysusers.d/siemcast.conf
  /etc/siemcast/siemcast.toml
  /etc/siemcast/mappings/README.md
  /usr/share/siemcast/mappings/README.md
  /usr/share/doc/siemcast/README.md
  /usr/share/man/man1/siemcast.1.gz
)
for kind in azure_activity defender_alerts graph_alerts entra_audit entra_signins o365_management \
  eventhubs_activity eventhubs_entra_audit eventhubs_entra_signins eventhubs_diagnostic \
  eventhubs_entra_provisioning eventhubs_entra_risk eventhubs_graph_activity eventhubs_defender_alerts \
  eventhubs_defender_xdr; do
  expected+=("/usr/share/siemcast/mappings/arcsight/$kind.toml" "/usr/share/siemcast/mappings/qradar/$kind.toml")
done
status=0
for f in "${expected[@]}"; do
  grep -qx "$f" "$work/files" || { echo "check-deb: the package lacks $f" >&2; status=1; }
done

dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/siemcast/siemcast.toml "$work/control/conffiles" || {
  echo "check-deb: /etc/siemcast/siemcast.toml is not a conffile" >&2
  status=1
}
grep -q "systemd-sysusers" "$work/control/postinst" || {
  echo "check-deb: postinst does not create the service user" >&2
  status=1
}
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/siemcast.service |
  cmp -s - systemd/siemcast.service || {
  echo "check-deb: the packaged unit differs from systemd/siemcast.service" >&2
  status=1
}
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/siemcast/siemcast.toml |
  cmp -s - examples/siemcast.toml || {
  echo "check-deb: the packaged config differs from examples/siemcast.toml" >&2
  status=1
}
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/man/man1/siemcast.1.gz | gzip -dc |
  cmp -s - man/siemcast.1 || {
  echo "check-deb: the packaged man page differs from man/siemcast.1" >&2
  status=1
}
[ "$status" = 0 ] && echo "check-deb: $(wc -l <"$work/files") entries, expected files present, conffile and unit correct"
exit "$status"
