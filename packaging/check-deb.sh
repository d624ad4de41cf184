#!/usr/bin/env bash
# Builds the Debian package with plain `cargo deb` (metadata in Cargo.toml) and
# inspects it without installing it: control fields, maintainer scripts and trigger,
# the file list and modes, conffiles, the units, the man page, and the binary run
# from a temporary unpacked copy. Installing it (user, directories, compiled Sieve
# scripts, `systemd-analyze verify`, start, reload, upgrade, removal) is checked in a
# booted container by packaging/check-booted.sh, never on this machine.
#
# Changes nothing outside target/ and a temporary directory: needs no root and
# installs no system package. Needs cargo-deb (CARGO_DEB_VERSION below; installed
# with `cargo install` into ~/.cargo if missing, as a build tool) and dpkg-dev
# (dpkg-shlibdeps, for cargo-deb's "$auto" depends). Exits non-zero on the first
# failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

# Newest cargo-deb at the time of writing; builds with rustc 1.85 and later.
CARGO_DEB_VERSION=3.8.0

die() {
  echo "check-deb: FAILED: $*" >&2
  exit 1
}
step() { echo "== $*"; }
ok() { echo "   ok: $*"; }

step "tools"
command -v dpkg-deb >/dev/null || die "dpkg-deb missing (package dpkg)"
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps missing: apt-get install dpkg-dev"
if [[ $(cargo deb --version 2>/dev/null) != "cargo-deb $CARGO_DEB_VERSION" ]]; then
  echo "   installing cargo-deb $CARGO_DEB_VERSION (cargo install)"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi
[[ $(cargo deb --version 2>/dev/null) == "cargo-deb $CARGO_DEB_VERSION" ]] ||
  die "cargo deb --version is not cargo-deb $CARGO_DEB_VERSION"
ok "dpkg-deb, dpkg-shlibdeps, cargo-deb $CARGO_DEB_VERSION"

step "build: cargo deb"
pkgid=$(cargo pkgid --locked)
version=${pkgid##*[#@]}
target_dir=${CARGO_TARGET_DIR:-target}
rm -f "$target_dir"/debian/coid_*.deb
# Plain `cargo deb`, as on a fresh checkout: it builds the release binary itself and
# needs nothing made beforehand (the man page is the committed packaging/coid.8).
deb=$(cargo deb --locked | tail -n 1)
[[ -f $deb ]] || die "cargo deb made no .deb (it said: $deb)"
ok "$deb ($(stat -c %s "$deb") bytes)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -R "$deb" "$work/pkg"
pkg=$work/pkg

step "control"
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == coid && $(field Version) == "$version"* ]] ||
  die "Package/Version: $(field Package) $(field Version), want coid $version"
maintainer=$(field Maintainer)
[[ $maintainer =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] || die "Maintainer has no address: '$maintainer'"
ok "Maintainer: $maintainer"
depends=$(field Depends)
grep -qw adduser <<<"$depends" || die "Depends lacks adduser: $depends"
ok "Depends: $depends"
grep -qxF 'interest-noawait /usr/bin/sievec' "$pkg/DEBIAN/triggers" ||
  die "DEBIAN/triggers has no interest in /usr/bin/sievec: $(cat "$pkg/DEBIAN/triggers" 2>&1)"
grep -q '^triggered)' "$pkg/DEBIAN/postinst" || die "postinst does not handle 'triggered'"
ok "trigger: interest-noawait /usr/bin/sievec, handled by postinst"
# An upgrade restarts coid.service only: coid.socket keeps its listening socket.
restarts=$(grep -E 'deb-systemd-invoke (try-)?restart' "$pkg/DEBIAN/postinst" || true)
[[ $restarts == *"try-restart coid.service"* && $restarts != *coid.socket* ]] ||
  die "postinst must try-restart coid.service alone: $restarts"
# prerm stops the units on removal only, never for an upgrade.
stops=$(grep -B1 -E 'deb-systemd-invoke (stop|restart)' "$pkg/DEBIAN/prerm" || true)
# shellcheck disable=SC2016 # the script's text
[[ $stops == *'"$1" = remove ]; then'*'deb-systemd-invoke stop coid.service coid.socket'* ]] ||
  die "prerm must stop the units on remove only: $stops"
[[ ! -e $pkg/DEBIAN/preinst ]] || ! grep -q deb-systemd-invoke "$pkg/DEBIAN/preinst" ||
  die "preinst stops or restarts units"
ok "postinst: try-restart coid.service only (coid.socket untouched by an upgrade)"
for script in postinst postrm prerm; do
  [[ -f $pkg/DEBIAN/$script ]] || continue
  sh -n "$pkg/DEBIAN/$script" || die "DEBIAN/$script: syntax error"
done
ok "maintainer scripts parse (sh -n)"

step "files"
listing=$(dpkg-deb -c "$deb" | awk '{ print $1, substr($6, 2) }')
for path in /usr/bin/coid /usr/lib/systemd/system/coid.service \
  /usr/lib/systemd/system/coid.socket /usr/share/man/man8/coid.8.gz \
  /etc/coid/coid.toml /etc/coid/policy.sieve /etc/coid/dovecot/coid.conf \
  /etc/coid/dovecot/90-coid.conf /etc/coid/dovecot/91-coid-metadata.conf \
  /etc/coid/dovecot/92-coid-seen.conf /etc/coid/dovecot/coid.sieve \
  /etc/coid/dovecot/coid-seen.sieve /usr/lib/coid/sieve-execute/coid-seen-move \
  /usr/share/doc/coid/README.md /usr/share/doc/coid/postfix-main.cf \
  /usr/share/doc/coid/copyright; do
  grep -q " ${path}\$" <<<"$listing" || die "the package lacks $path"
done
grep -q ' /etc/coid/dovecot/2\.4/.*\.conf$' <<<"$listing" || die "the package lacks /etc/coid/dovecot/2.4/*.conf"
ok "binary, units, man page, /etc/coid, doc"
grep -q '^-rwxr-xr-x /usr/lib/coid/sieve-execute/coid-seen-move$' <<<"$listing" ||
  die "coid-seen-move is not mode 0755"
ok "coid-seen-move 0755"
conffiles=$(awk 'NF { print $1 }' "$pkg/DEBIAN/conffiles")
while read -r path; do
  grep -qxF "$path" <<<"$conffiles" || die "$path is not a conffile"
done < <(awk '$1 ~ /^-/ && $2 ~ /^\/etc\// { print $2 }' <<<"$listing")
ok "every file under /etc is a conffile ($(wc -l <<<"$conffiles"))"
unit=$pkg/usr/lib/systemd/system/coid.service
# shellcheck disable=SC2016 # the unit's text
grep -qxF 'ExecReload=/usr/bin/coid reload $MAINPID' "$unit" || die "coid.service: ExecReload is not coid reload"
! grep -q '^Exec.*/bin/kill' "$unit" || die "coid.service still runs kill(1)"
ok "coid.service reloads with coid itself (no procps)"

step "binary and man page, from the unpacked package"
out=$("$pkg/usr/bin/coid" --version)
[[ $out == "coid $version" ]] || die "coid --version said '$out', not 'coid $version'"
ok "coid --version: $out"
page=$(zcat "$pkg/usr/share/man/man8/coid.8.gz") || die "cannot read coid.8.gz"
[[ $page == "$("$pkg/usr/bin/coid" man)" ]] || die "the shipped coid.8.gz is not what 'coid man' prints"
grep -q '^\.TH coid 8 ' <<<"$page" || die "coid.8.gz is not coid(8)"
ok "coid.8.gz = coid man ($(wc -l <<<"$page") lines)"

step "summary"
echo "   $deb: $(stat -c %s "$deb") bytes, $(field Version) $(field Architecture)"
echo "   installed checks: packaging/check-booted.sh bookworm|trixie"
