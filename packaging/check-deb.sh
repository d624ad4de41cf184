#!/usr/bin/env bash
# Builds the Debian package (cargo-deb, metadata in Cargo.toml), installs it on this
# machine and checks the result from the installed paths: binary, man page, units,
# conffiles, the coid user and directories, `systemd-analyze verify`.
#
# Run as root on Debian 12. It installs what it needs: Postfix, Dovecot with sievec
# and the rest through tests/install-packages.sh, then systemd, dpkg-dev, man-db with
# apt and cargo-deb with cargo. It removes an earlier install and the coid account
# first, so postinst has to create them; conffiles under /etc/coid are the shipped
# ones (dpkg --force-confnew).
# It neither enables nor starts coid. Exits non-zero on the first failed check.
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

[[ $(id -u) == 0 ]] || die "must run as root (it installs the package)"
export DEBIAN_FRONTEND=noninteractive

step "tools"
# Postfix (the socket directory's group), dovecot-sieve (postinst's sievec), procps.
tests/install-packages.sh
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev) # cargo-deb's "$auto" depends
[[ -x /usr/sbin/adduser ]] || need+=(adduser)
command -v man >/dev/null || need+=(man-db) # man -w, and verify's Documentation= check
if ((${#need[@]})); then
  echo "   installing ${need[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
command -v systemd-analyze >/dev/null || die "systemd-analyze missing (package systemd)"
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps missing (package dpkg-dev)"
[[ -x /usr/sbin/adduser ]] || die "adduser missing (package adduser)"
command -v man >/dev/null || die "man missing (package man-db)"
command -v sievec >/dev/null || die "sievec missing (package dovecot-sieve)"
if [[ $(cargo deb --version 2>/dev/null) != "cargo-deb $CARGO_DEB_VERSION" ]]; then
  echo "   installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi
[[ $(cargo deb --version 2>/dev/null) == "cargo-deb $CARGO_DEB_VERSION" ]] ||
  die "cargo deb --version is not cargo-deb $CARGO_DEB_VERSION"
ok "systemd-analyze, dpkg-shlibdeps, adduser, cargo-deb $CARGO_DEB_VERSION"

step "build"
pkgid=$(cargo pkgid --locked)
version=${pkgid##*[#@]}
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release --locked
# The man page is an asset at target/man/coid.8 (Cargo.toml), made by the binary.
mkdir -p target/man
"$target_dir/release/coid" man >target/man/coid.8
grep -q '^\.TH coid 8 ' target/man/coid.8 || die "coid man: no .TH coid 8"
rm -f "$target_dir"/debian/coid_*.deb
# --no-build: packages the binary just built (and no other profile or features).
deb=$(cargo deb --no-build --locked | tail -n 1)
[[ -f $deb ]] || die "cargo deb made no .deb (it said: $deb)"
ok "$deb ($(stat -c %s "$deb") bytes)"

step "install"
# From nothing: no earlier package, no coid account (the tests made one), so what
# follows checks what postinst itself creates.
dpkg --purge coid >/dev/null 2>&1 || true
if getent passwd coid >/dev/null; then deluser --system --quiet coid; fi
if getent group coid >/dev/null; then delgroup --system --quiet coid; fi
dpkg --force-confnew -i "$deb"
[[ $(dpkg-query -W -f='${db:Status-Abbrev}' coid) == "ii " ]] ||
  die "coid is not fully installed: $(dpkg-query -W -f='${db:Status-Abbrev}' coid)"
ok "dpkg -i $(basename "$deb")"

step "installed files"
# The first line of --version is "coid <version>".
out=$(/usr/bin/coid --version)
[[ $out == "coid $version" ]] || die "/usr/bin/coid --version said '$out', not 'coid $version'"
ok "/usr/bin/coid --version: $out"
out=$(/usr/bin/coid check-config --config /etc/coid/coid.toml 2>&1) ||
  die "coid check-config --config /etc/coid/coid.toml: exit $?: $out"
ok "coid check-config --config /etc/coid/coid.toml${out:+: $out}"
# (No "| grep -q": grep would stop reading early and fail the pipe under pipefail.)
page=$(/usr/bin/coid man) || die "/usr/bin/coid man: exit $?"
grep -q '^\.TH coid 8 ' <<<"$page" || die "/usr/bin/coid man: no .TH coid 8"
ok "/usr/bin/coid man ($(wc -l <<<"$page") lines)"
page=$(zcat /usr/share/man/man8/coid.8.gz) || die "cannot read /usr/share/man/man8/coid.8.gz"
grep -q '^\.TH coid 8 ' <<<"$page" || die "/usr/share/man/man8/coid.8.gz is not coid(8)"
man -w coid >/dev/null || die "man -w coid finds no page"
ok "/usr/share/man/man8/coid.8.gz"

listing=$(dpkg -L coid)
for path in /usr/bin/coid /usr/lib/systemd/system/coid.service \
  /usr/lib/systemd/system/coid.socket /usr/share/man/man8/coid.8.gz \
  /etc/coid/coid.toml /etc/coid/policy.sieve /etc/coid/dovecot/coid.conf \
  /etc/coid/dovecot/90-coid.conf /etc/coid/dovecot/91-coid-metadata.conf \
  /etc/coid/dovecot/92-coid-seen.conf /etc/coid/dovecot/coid.sieve \
  /etc/coid/dovecot/coid-seen.sieve /usr/lib/coid/sieve-execute/coid-seen-move \
  /usr/share/doc/coid/README.md /usr/share/doc/coid/postfix-main.cf \
  /usr/share/doc/coid/copyright; do
  grep -qxF "$path" <<<"$listing" || die "dpkg -L coid lacks $path"
  [[ -f $path ]] || die "$path is not installed"
done
grep -q '^/etc/coid/dovecot/2\.4/.*\.conf$' <<<"$listing" ||
  die "dpkg -L coid lacks /etc/coid/dovecot/2.4/*.conf"
ok "dpkg -L coid: binary, units, man page, /etc/coid, doc"
[[ $(stat -c %a /usr/lib/coid/sieve-execute/coid-seen-move) == 755 ]] ||
  die "coid-seen-move is not mode 0755"
ok "coid-seen-move 0755"

# Every file the package puts under /etc is a conffile.
conffiles=$(dpkg-query -W -f='${Conffiles}\n' coid | awk 'NF { print $1 }')
grep -qxF /etc/coid/coid.toml <<<"$conffiles" || die "/etc/coid/coid.toml is not a conffile"
while read -r path; do
  [[ -f $path ]] || continue
  grep -qxF "$path" <<<"$conffiles" || die "$path is not a conffile"
done < <(grep '^/etc/' <<<"$listing")
ok "conffiles: $(wc -l <<<"$conffiles") files, /etc/coid/coid.toml among them"

step "user and directories"
getent passwd coid >/dev/null || die "no user coid"
getent group coid >/dev/null || die "no group coid"
uid=$(id -u coid)
((uid < 1000)) || die "coid is not a system user (uid $uid)"
ok "user coid: $(getent passwd coid)"
expect_dir() { # path owner:group mode
  local got
  [[ -d $1 ]] || die "$1 missing"
  got=$(stat -c '%U:%G %a' "$1")
  [[ $got == "$2 $3" ]] || die "$1 is $got, not $2 $3"
  ok "$1 $got"
}
expect_dir /var/lib/coid coid:coid 700
expect_dir /var/spool/postfix/coid coid:postfix 750
for script in coid coid-seen; do
  [[ -f /etc/coid/dovecot/$script.svbin ]] ||
    die "postinst did not compile /etc/coid/dovecot/$script.sieve (sievec is here)"
  ok "/etc/coid/dovecot/$script.svbin (sievec)"
done

step "systemd-analyze verify"
units=(/usr/lib/systemd/system/coid.service /usr/lib/systemd/system/coid.socket)
# Works without a running systemd (it loads the units in a private test manager),
# and checks Documentation= with man(1).
if ! out=$(systemd-analyze verify "${units[@]}" 2>&1); then
  die "systemd-analyze verify: $out"
fi
# Strict: anything said about coid's units is a failure (warnings included).
if grep -i coid <<<"$out"; then
  die "systemd-analyze verify complained about coid's units"
fi
ok "systemd-analyze verify ${units[*]}${out:+ (about other units: $out)}"

step "summary"
echo "   $(dpkg-query -W -f='${Package} ${Version} ${Architecture}, ${Installed-Size} KiB installed' coid)"
echo "   $deb: $(stat -c %s "$deb") bytes"
echo "   Depends: $(dpkg-query -W -f='${Depends}' coid)"
echo "   not enabled, not started: systemctl enable --now coid (see README)"
