#!/bin/bash
# Build bulkhead's guest images and the KVM test host's boot files from Debian 12 packages.
#
#   scripts/build-images.sh [--force] [--quiet]
#
# Output: ${BULKHEAD_CACHE:-$HOME/.cache/bulkhead}/images/
#   vmlinuz                     linux-image-6.1.0-*-amd64's bzImage, as shipped
#   vmlinux                     the same kernel as an uncompressed ELF (Xen PVH note checked)
#   vmlinuz-rt, vmlinux-rt      the same two of linux-image-6.1.0-*-rt-amd64 (PREEMPT_RT)
#   initramfs.cpio.gz           Linux-partition guest root for both kernels: busybox, /init,
#                               the VirtIO, watchdog (ib700wdt) and pvpanic modules of each kernel,
#                               Debian's fio, iperf3, socat, cyclictest (rt-tests) and stress-ng
#                               with every shared library they need, bh-cyclictest
#   testhost-vmlinux            the test host's kernel (a hard link to vmlinux)
#   testhost-initramfs.cpio.gz  the test host's root: busybox, /init, kvm-amd + 9p modules
#   kernel.config               the kernel's build configuration (kernel-rt.config: the RT one's)
#   manifest                    package versions and the build key
# Downloaded packages are kept in .../bulkhead/debs/. Nothing is installed into this machine
# except the build tools (cpio, xz-utils, kmod, binutils, gzip) via apt-get.
# The build is skipped when the manifest's key (both kernels, busybox, the tools and their library
# packages' versions + a hash of this script and scripts/images/*) matches; --force rebuilds
# anyway.
# See docs/test-host.md.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FILES_DIR=$SCRIPT_DIR/images
CACHE=${BULKHEAD_CACHE:-$HOME/.cache/bulkhead}
OUT=$CACHE/images
DEBS=$CACHE/debs

FORCE=0
QUIET=0
for arg in "$@"; do
	case $arg in
	--force) FORCE=1 ;;
	--quiet | -q) QUIET=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build-images.sh: unknown argument '$arg' (try --help)" >&2
		exit 2
		;;
	esac
done

NSTEPS=7
STEP=0
T_START=$(date +%s.%N)
step() {
	STEP=$((STEP + 1))
	[ "$QUIET" = 1 ] || printf '[%d/%d] %s\n' "$STEP" "$NSTEPS" "$*"
}
info() { [ "$QUIET" = 1 ] || printf '      %s\n' "$*"; }
die() {
	printf 'build-images.sh: error: %s\n' "$*" >&2
	exit 1
}

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_update_once() {
	[ "$APT_UPDATED" = 0 ] || return 0
	APT_UPDATED=1
	info "running apt-get update"

	for _ in 1 2 3 4 5 6; do
		# Non-zero also when some third-party source is unreachable: the Debian lists may still
		# have been refreshed, so carry on; resolving the packages tells.
		as_root apt-get -o DPkg::Lock::Timeout=600 -qq update >/dev/null 2>&1 && return 0
		# Another apt-get (another engineer's, a parallel build) may hold the lists lock.
		sleep 5
	done
	printf 'build-images.sh: warning: apt-get update failed; using the current apt lists\n' >&2
}

# ---------------------------------------------------------------------------------------------
step "checking build tools"
need_pkgs=()
for pair in cpio:cpio xz:xz-utils depmod:kmod modprobe:kmod readelf:binutils gzip:gzip \
	dpkg-deb:dpkg flock:util-linux sha256sum:coreutils; do
	cmd=${pair%%:*}
	command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin command -v "$cmd" >/dev/null 2>&1 ||
		need_pkgs+=("${pair#*:}")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
	mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
	info "installing: ${need_pkgs[*]}"
	apt_update_once
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y \
		--no-install-recommends "${need_pkgs[@]}" >/dev/null || die "apt-get install ${need_pkgs[*]} failed"
fi
export PATH=$PATH:/sbin:/usr/sbin

mkdir -p "$OUT" "$DEBS"
exec 9>"$OUT/.lock"
flock 9 # one build at a time per cache

OUTPUTS=(vmlinuz vmlinux vmlinuz-rt vmlinux-rt initramfs.cpio.gz testhost-vmlinux testhost-initramfs.cpio.gz)
# Tools in the guest image: Debian's binaries as shipped, with the shared libraries they load
# (found by following DT_NEEDED from the binaries through the library packages they depend on).
TOOL_PKGS=(fio iperf3 socat rt-tests stress-ng)
TOOL_BINS=(/usr/bin/fio /usr/bin/iperf3 /usr/bin/socat /usr/bin/cyclictest /usr/bin/stress-ng)
# Modules of the guest initramfs, for both kernels (dependencies come from modules.dep): the
# VirtIO set, and the health monitor's guest side (ib700wdt: the IB700 watchdog at ports
# 0x441/0x443; pvpanic-mmio: the ACPI QEMU0001 panic device).
GUEST_MODULES=(virtio_mmio virtio_pci virtio_blk virtio_net virtio_console virtio_rng
	vmw_vsock_virtio_transport ib700wdt pvpanic pvpanic_mmio)
INPUT_HASH=$(cat "$0" "$FILES_DIR"/* | sha256sum | cut -c1-16)

# Fast path (apt-cache takes ~0.5 s a call here): if the apt lists have not changed since the last
# build, its package versions are still the ones apt would pick.
if [ "$FORCE" = 0 ] && [ -r "$OUT/manifest" ] &&
	grep -q "^key: .* scripts=$INPUT_HASH\$" "$OUT/manifest" &&
	[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -newer "$OUT/manifest" 2>/dev/null | head -n1)" ]; then
	fast=1
	for f in "${OUTPUTS[@]}"; do [ -s "$OUT/$f" ] || fast=0; done
	if [ "$fast" = 1 ]; then
		if [ "$QUIET" = 0 ]; then
			echo "up to date ($(sed -n 's/^key: //p' "$OUT/manifest"))"
			echo "images in $OUT/:"
			for f in "${OUTPUTS[@]}" kernel.config kernel-rt.config manifest; do
				[ -e "$OUT/$f" ] && printf '  %-28s %8s\n' "$f" "$(du -h --apparent-size "$OUT/$f" | cut -f1)"
			done
		fi
		exit 0
	fi
fi

# ---------------------------------------------------------------------------------------------
step "resolving packages (linux-image-amd64, linux-image-rt-amd64, busybox-static, ${TOOL_PKGS[*]} and their libraries)"
resolve() { # metapackage/package -> "name version" using the local apt lists
	local pkg=$1 real ver
	if [ "$pkg" = linux-image-amd64 ] || [ "$pkg" = linux-image-rt-amd64 ]; then
		# linux-image-amd64 -> linux-image-6.1.0-NN-amd64, linux-image-rt-amd64 -> ...-NN-rt-amd64
		real=$(apt-cache depends "$pkg" 2>/dev/null |
			sed -n "s/^ *Depends: \(linux-image-[0-9][^ ]*-${pkg#linux-image-}\)\$/\1/p" | head -n1)
	else
		real=$pkg
	fi
	[ -n "$real" ] || return 1
	ver=$(apt-cache policy "$real" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || return 1
	echo "$real $ver"
}
# The tools and, transitively, the library packages (lib*, zlib1g; first alternative of an OR)
# they depend on, as "name version" lines: one `apt-cache depends --recurse` and one
# `apt-cache policy`. Packages that hold no library (python3, debconf, ...) are not followed;
# the DT_NEEDED walk at build time fails loudly if a library is missing.
resolve_tools() {
	local graph names
	graph=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances "${TOOL_PKGS[@]}" 2>/dev/null) || return 1
	names=$(awk -v roots="${TOOL_PKGS[*]}" '
		/^[^ ]/ { pkg = $1; alt = 0; next }
		/^ *[|]?(Pre)?Depends: / {
			first = !alt; alt = ($1 ~ /^[|]/); d = $2
			if (first && d !~ /^</ && (d ~ /^lib/ || d == "zlib1g")) deps[pkg] = deps[pkg] " " d
			next
		}
		END {
			n = split(roots, q, " ")
			for (i = 1; i <= n; i++) seen[q[i]] = 1
			for (i = 1; i <= n; i++) {
				print q[i]
				m = split(deps[q[i]], ds, " ")
				for (j = 1; j <= m; j++) if (!(ds[j] in seen)) { seen[ds[j]] = 1; q[++n] = ds[j] }
			}
		}' <<<"$graph")
	[ -n "$names" ] || return 1
	# shellcheck disable=SC2086 # one package name a word
	apt-cache policy $names 2>/dev/null | awk '
		/^[^ ]/ { sub(/:$/, "", $1); p = $1 }
		/^  Candidate:/ { if ($2 == "(none)") bad = 1; else print p, $2 }
		END { exit bad }' | LC_ALL=C sort
}
resolve_all() { # sets KNAME KVER KREL RTNAME RTVER RTREL BBNAME BBVER TOOLS ("name version" lines)
	local kpkg rtpkg bbpkg p
	kpkg=$(resolve linux-image-amd64) && rtpkg=$(resolve linux-image-rt-amd64) &&
		bbpkg=$(resolve busybox-static) || return 1
	read -r KNAME KVER <<<"$kpkg"
	read -r RTNAME RTVER <<<"$rtpkg"
	read -r BBNAME BBVER <<<"$bbpkg"
	KREL=${KNAME#linux-image-}   # kernel release, e.g. 6.1.0-56-amd64
	RTREL=${RTNAME#linux-image-} # e.g. 6.1.0-56-rt-amd64
	TOOLS=$(resolve_tools) || return 1
	for p in "${TOOL_PKGS[@]}"; do grep -q "^$p " <<<"$TOOLS" || return 1; done
}
tool_version() { sed -n "s/^$1 //p" <<<"$TOOLS"; }
make_key() {
	local p tool_key=""
	for p in "${TOOL_PKGS[@]}"; do tool_key+="$p=$(tool_version "$p") "; done
	KEY="$KNAME=$KVER $RTNAME=$RTVER $BBNAME=$BBVER ${tool_key}libs=$(sha256sum <<<"$TOOLS" | cut -c1-16) scripts=$INPUT_HASH"
}
if ! resolve_all; then
	apt_update_once
	resolve_all || die "cannot resolve linux-image-amd64 / linux-image-rt-amd64 / busybox-static / ${TOOL_PKGS[*]} with apt-cache"
fi
info "$KNAME $KVER (kernel $KREL), $RTNAME $RTVER (kernel $RTREL), $BBNAME $BBVER"
info "$(for p in "${TOOL_PKGS[@]}"; do printf '%s %s, ' "$p" "$(tool_version "$p")"; done)$(($(wc -l <<<"$TOOLS") - ${#TOOL_PKGS[@]})) library packages"

make_key

show_outputs() {
	[ "$QUIET" = 1 ] && return 0
	echo "images in $OUT/:"
	for f in "${OUTPUTS[@]}" kernel.config kernel-rt.config manifest; do
		[ -e "$OUT/$f" ] && printf '  %-28s %8s\n' "$f" "$(du -h --apparent-size "$OUT/$f" | cut -f1)"
	done
	echo "  kernels: $KNAME $KVER ($KREL), $RTNAME $RTVER ($RTREL); busybox: $BBNAME $BBVER"
	echo "  tools: $(for p in "${TOOL_PKGS[@]}"; do printf '%s %s ' "$p" "$(tool_version "$p")"; done)(+ $(($(wc -l <<<"$TOOLS") - ${#TOOL_PKGS[@]})) library packages)"
}

up_to_date=1
[ "$FORCE" = 0 ] || up_to_date=0
[ -r "$OUT/manifest" ] && grep -qxF "key: $KEY" "$OUT/manifest" || up_to_date=0
for f in "${OUTPUTS[@]}"; do [ -s "$OUT/$f" ] || up_to_date=0; done
if [ "$up_to_date" = 1 ]; then
	[ "$QUIET" = 1 ] || echo "up to date ($KEY)"
	touch "$OUT/manifest" # newer than the apt lists again: the fast path applies next time
	show_outputs
	exit 0
fi

# ---------------------------------------------------------------------------------------------
step "downloading $KNAME $KVER, $RTNAME $RTVER, $BBNAME $BBVER and $(wc -l <<<"$TOOLS") tool/library packages into $DEBS"
deb_path() { # name version -> path of the cached .deb, if present
	local f
	for f in "$DEBS/$1"_*.deb; do
		[ -e "$f" ] || continue
		if [ "$(dpkg-deb -f "$f" Version)" = "$2" ]; then
			echo "$f"
			return 0
		fi
	done
	return 1
}
fetch() { # name version
	local p
	if p=$(deb_path "$1" "$2"); then
		info "cached: $(basename "$p")"
		return 0
	fi
	# Drop other versions of the same package.
	rm -f "$DEBS/$1"_*.deb
	(cd "$DEBS" && apt-get -qq -o APT::Sandbox::User=root download "$1=$2" >/dev/null 2>&1) || return 1
	p=$(deb_path "$1" "$2") || die "downloaded $1 $2 but cannot find the .deb"
	info "downloaded: $(basename "$p") ($(du -h "$p" | cut -f1))"
}
fetch_tools() { # the packages of $TOOLS not cached yet, in one apt-get call
	local name ver missing=() n=0
	while read -r name ver; do
		deb_path "$name" "$ver" >/dev/null && continue
		rm -f "$DEBS/$name"_*.deb
		missing+=("$name=$ver")
	done <<<"$TOOLS"
	if [ ${#missing[@]} -gt 0 ]; then
		(cd "$DEBS" && apt-get -qq -o APT::Sandbox::User=root download "${missing[@]}" >/dev/null 2>&1) || return 1
	fi
	while read -r name ver; do
		deb_path "$name" "$ver" >/dev/null || die "downloaded $name $ver but cannot find the .deb"
		n=$((n + 1))
	done <<<"$TOOLS"
	info "tools: $n packages, $((n - ${#missing[@]})) cached, ${#missing[@]} downloaded"
}
if ! fetch "$KNAME" "$KVER" || ! fetch "$RTNAME" "$RTVER" || ! fetch "$BBNAME" "$BBVER" || ! fetch_tools; then
	# Stale apt lists: the mirror no longer has that version. Update, re-resolve, retry.
	[ "$APT_UPDATED" = 0 ] || die "apt-get download failed"
	apt_update_once
	resolve_all || die "cannot resolve linux-image-amd64 / linux-image-rt-amd64 / busybox-static / ${TOOL_PKGS[*]} with apt-cache"
	info "now: $KNAME $KVER (kernel $KREL), $RTNAME $RTVER (kernel $RTREL), $BBNAME $BBVER"
	make_key
	fetch "$KNAME" "$KVER" || die "apt-get download $KNAME=$KVER failed"
	fetch "$RTNAME" "$RTVER" || die "apt-get download $RTNAME=$RTVER failed"
	fetch "$BBNAME" "$BBVER" || die "apt-get download $BBNAME=$BBVER failed"
	fetch_tools || die "apt-get download of ${TOOL_PKGS[*]} and their libraries failed"
fi
KDEB=$(deb_path "$KNAME" "$KVER")
RTDEB=$(deb_path "$RTNAME" "$RTVER")
BBDEB=$(deb_path "$BBNAME" "$BBVER")

WORK=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/out
mkdir -p "$STAGE"

# ---------------------------------------------------------------------------------------------
step "extracting $KNAME, $RTNAME, $BBNAME and the tool packages"
KROOT=$WORK/kernel
RTROOT=$WORK/kernel-rt
dpkg-deb -x "$KDEB" "$KROOT"
dpkg-deb -x "$RTDEB" "$RTROOT"
dpkg-deb -x "$BBDEB" "$WORK/busybox"
TROOT=$WORK/tools # every tool and library package, unpacked over each other
while read -r name ver; do
	dpkg-deb -x "$(deb_path "$name" "$ver")" "$TROOT"
done <<<"$TOOLS"
BUSYBOX=$WORK/busybox/bin/busybox
[ -x "$BUSYBOX" ] || die "no bin/busybox in $BBDEB"
[ -d "$KROOT/lib/modules/$KREL" ] || die "no lib/modules/$KREL in $KDEB"
[ -d "$RTROOT/lib/modules/$RTREL" ] || die "no lib/modules/$RTREL in $RTDEB"
# Debian's kernel packages don't ship modules.dep (the postinst generates it).
depmod -b "$KROOT" "$KREL"
depmod -b "$RTROOT" "$RTREL"
info "$(find "$KROOT/lib/modules/$KREL" -name '*.ko*' | wc -l) + $(find "$RTROOT/lib/modules/$RTREL" -name '*.ko*' | wc -l) modules, depmod done"

# ---------------------------------------------------------------------------------------------
# extract_vmlinux BZIMAGE OUT: the uncompressed ELF kernel inside a bzImage, checked for the
# Xen PVH entry note. The payload is located from the setup header (setup_sects,
# payload_offset, payload_length); Debian's kernels are CONFIG_KERNEL_XZ.
extract_vmlinux() {
	local bz=$1 out=$2 setup_sects payload_offset payload_length start magic comp notes
	le() { od -An -t "u$2" -j "$1" -N "$2" "$bz" | tr -d ' \n'; } # offset size -> unsigned LE
	[ "$(dd if="$bz" bs=1 skip=514 count=4 status=none)" = HdrS ] || die "$bz is not a bzImage"
	setup_sects=$(le 0x1f1 1)
	[ "$setup_sects" -gt 0 ] || setup_sects=4
	payload_offset=$(le 0x248 4)
	payload_length=$(le 0x24c 4)
	start=$(((setup_sects + 1) * 512 + payload_offset))
	magic=$(od -An -t x1 -j "$start" -N 6 "$bz" | tr -d ' \n')
	extract_payload() { dd if="$bz" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$payload_length" status=none; }
	case $magic in
	fd377a585a00) comp=xz; extract_payload | xz -dc --single-stream >"$out" ;;
	1f8b08*) comp=gzip; extract_payload | gzip -dc >"$out" 2>/dev/null || [ -s "$out" ] ;;
	28b52ffd*) comp=zstd; extract_payload | zstd -dc >"$out" ;;
	*) die "unknown compressed payload (magic $magic) in $bz" ;;
	esac
	[ "$(od -An -t x1 -N 4 "$out" | tr -d ' \n')" = 7f454c46 ] || die "decompressed payload of $bz is not an ELF"
	# Xen PVH entry point: XEN_ELFNOTE_PHYS32_ENTRY = 18 (0x12) in a "Xen" note.
	notes=$(readelf -n "$out")
	grep -Eq '^[[:space:]]*Xen[[:space:]]+0x[0-9a-f]+[[:space:]]+(Unknown note type: \(0x00000012\)|.*PHYS32)' <<<"$notes" ||
		die "$(basename "$out") has no Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY)"
	info "payload: $comp, ${payload_length} bytes at offset $start -> $(basename "$out") $(du -h --apparent-size "$out" | cut -f1), PVH note present"
}

step "extracting vmlinux and vmlinux-rt from the bzImages of $KNAME and $RTNAME"
BZ=$KROOT/boot/vmlinuz-$KREL
[ -r "$BZ" ] || die "no boot/vmlinuz-$KREL in $KDEB"
RTBZ=$RTROOT/boot/vmlinuz-$RTREL
[ -r "$RTBZ" ] || die "no boot/vmlinuz-$RTREL in $RTDEB"
cp "$BZ" "$STAGE/vmlinuz"
cp "$RTBZ" "$STAGE/vmlinuz-rt"
cp "$KROOT/boot/config-$KREL" "$STAGE/kernel.config"
cp "$RTROOT/boot/config-$RTREL" "$STAGE/kernel-rt.config"
grep -qx 'CONFIG_PREEMPT_RT=y' "$STAGE/kernel-rt.config" || die "$RTNAME is not built with CONFIG_PREEMPT_RT=y"
extract_vmlinux "$BZ" "$STAGE/vmlinux"
extract_vmlinux "$RTBZ" "$STAGE/vmlinux-rt"
ln "$STAGE/vmlinux" "$STAGE/testhost-vmlinux"

# ---------------------------------------------------------------------------------------------
# copy_from_tools ROOT PATH: copies PATH (absolute, inside $TROOT) into ROOT, following and
# recreating its chain of symlinks (the loader's /lib64 link, libfoo.so.1 -> libfoo.so.1.2.3).
# Prints the path of the file at the end of the chain.
copy_from_tools() {
	local root=$1 p=$2 t i
	for i in 1 2 3 4 5 6 7 8; do
		[ -e "$TROOT$p" ] || [ -L "$TROOT$p" ] || die "tools: $p is in none of the packages"
		mkdir -p "$root$(dirname "$p")"
		if [ -L "$TROOT$p" ]; then
			[ -L "$root$p" ] || cp -P "$TROOT$p" "$root$p"
			t=$(readlink "$TROOT$p")
			case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
			continue
		fi
		[ -f "$root$p" ] || cp "$TROOT$p" "$root$p"
		echo "$p"
		return 0
	done
	die "tools: too many symlinks at $2"
}

# install_tools ROOT: the tool binaries, their program interpreter and, transitively, every
# library in their DT_NEEDED, searched like ld.so (DT_RUNPATH/DT_RPATH, then the multiarch
# directories; no ld.so.cache in the guest). Sets TOOLS_INFO.
install_tools() {
	local root=$1 todo=() f so d dirs found interp seen=" " nlib=0 bytes
	for f in "${TOOL_BINS[@]}"; do
		found=$(copy_from_tools "$root" "$f") || exit 1
		todo+=("$found")
		interp=$(readelf -lW "$TROOT$f" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
		[ -n "$interp" ] || die "tools: $f has no program interpreter"
		case $seen in *" $interp "*) ;; *) seen+="$interp "; copy_from_tools "$root" "$interp" >/dev/null || exit 1 ;; esac
	done
	while [ ${#todo[@]} -gt 0 ]; do
		f=${todo[0]}
		todo=("${todo[@]:1}")
		dirs=$(readelf -dW "$TROOT$f" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]$/\2/p' | tr ':' ' ')
		dirs=${dirs//\$ORIGIN/$(dirname "$f")}
		for so in $(readelf -dW "$TROOT$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
			case $seen in *" $so "*) continue ;; esac
			seen+="$so "
			found=
			for d in $dirs /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib /usr/lib; do
				if [ -e "$TROOT$d/$so" ] || [ -L "$TROOT$d/$so" ]; then found=$d/$so; break; fi
			done
			[ -n "$found" ] || die "tools: $so (needed by $f) is in none of the packages of ${TOOL_PKGS[*]}'s dependencies"
			found=$(copy_from_tools "$root" "$found") || exit 1
			todo+=("$found")
			nlib=$((nlib + 1))
		done
	done
	bytes=$(find "$root" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
	TOOLS_INFO="${TOOL_BINS[*]##*/} + $nlib shared libraries (the loader included), $((bytes / 1048576)) MiB"
}

# add_modules ROOT KROOT KREL MODULE...: the modules and their dependencies (modules.dep of the
# unpacked kernel package at KROOT) into ROOT/lib/modules/KREL, with modules.builtin*,
# modules.order and the files of `depmod -b`. Adds to NMODS.
add_modules() {
	local root=$1 kroot=$2 krel=$3 m deps kind path rel
	shift 3
	mkdir -p "$root/lib/modules/$krel"
	for m in "$@"; do
		deps=$(modprobe -d "$kroot" -S "$krel" --show-depends "$m" 2>&1) ||
			die "module $m not found in kernel $krel: $deps"
		while read -r kind path _; do
			case $kind in
			insmod)
				rel=${path#"$kroot"/}
				if [ ! -e "$root/$rel" ]; then
					mkdir -p "$root/$(dirname "$rel")"
					cp "$path" "$root/$rel"
					NMODS=$((NMODS + 1))
				fi
				;;
			builtin) ;;
			*) die "modprobe --show-depends $m: unexpected '$kind $path'" ;;
			esac
		done <<<"$deps"
	done
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		[ -e "$kroot/lib/modules/$krel/$f" ] && cp "$kroot/lib/modules/$krel/$f" "$root/lib/modules/$krel/"
	done
	depmod -b "$root" "$krel"
}

# make_initramfs [--tools] [--rt] NAME INIT MODULE... : a newc cpio (gzip) with busybox, /init,
# lib.sh, the modules and their dependencies from modules.dep; with --rt the same modules of the
# RT kernel too (/lib/modules/<release> of each: modprobe picks the running kernel's); with
# --tools also fio, iperf3, socat, cyclictest, stress-ng (install_tools) and bh-cyclictest.
make_initramfs() {
	local tools=0 rt=0
	while :; do
		case $1 in
		--tools) tools=1; shift ;;
		--rt) rt=1; shift ;;
		*) break ;;
		esac
	done
	local name=$1 init=$2 root=$WORK/root-$1 line level=9 extra="" mods
	shift 2
	NMODS=0
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/bulkhead,proc,sys,dev,tmp,run,root,mnt}
	cp "$BUSYBOX" "$root/bin/busybox"
	while read -r line; do
		[ "$line" = bin/busybox ] && continue
		mkdir -p "$root/$(dirname "$line")"
		ln -sf /bin/busybox "$root/$line"
	done < <("$BUSYBOX" --list-full)
	install -m 0755 "$FILES_DIR/$init" "$root/init"
	install -m 0644 "$FILES_DIR/lib.sh" "$root/etc/bulkhead/lib.sh"
	# Device nodes so the kernel can open the initial console (needs root; /init copes without).
	mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
	mknod -m 666 "$root/dev/null" c 1 3 2>/dev/null || true
	echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
	echo "root:x:0:" >"$root/etc/group"
	add_modules "$root" "$KROOT" "$KREL" "$@"
	mods="$(cd "$root/lib/modules/$KREL" && find . -name '*.ko*' -printf '%f\n' | sed 's/\.ko.*//' | sort | xargs)"
	if [ "$rt" = 1 ]; then
		add_modules "$root" "$RTROOT" "$RTREL" "$@"
		mods+="; the same for $RTREL"
	fi
	if [ "$tools" = 1 ]; then
		install_tools "$WORK/tools-$name" # on its own first, to measure it
		cp -a "$WORK/tools-$name/." "$root/"
		install -m 0755 "$FILES_DIR/bh-cyclictest" "$root/usr/bin/bh-cyclictest"
		install -m 0644 "$FILES_DIR/cyclictest-stats.awk" "$root/etc/bulkhead/cyclictest-stats.awk"
		extra="; $TOOLS_INFO; bh-cyclictest"
		level=6 # ~90 MB to compress: -9 takes 3x as long for 0.5 % less
	fi
	(cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) |
		gzip -n -"$level" >"$STAGE/$name"
	info "$name: $(du -h --apparent-size "$STAGE/$name" | cut -f1) ($(du -sh --apparent-size "$root" | cut -f1) unpacked): busybox ($("$BUSYBOX" --list-full | wc -l) applets), $NMODS modules ($mods)$extra"
}

step "building initramfs.cpio.gz (guest, both kernels: busybox, /init, ${GUEST_MODULES[*]}, ${TOOL_PKGS[*]})"
make_initramfs --tools --rt initramfs.cpio.gz guest-init "${GUEST_MODULES[@]}"

step "building testhost-initramfs.cpio.gz (busybox, /init, kvm-amd, 9p over virtio-mmio)"
make_initramfs testhost-initramfs.cpio.gz testhost-init \
	irqbypass kvm ccp kvm_amd virtio_mmio 9pnet 9pnet_virtio 9p virtio_net virtio_blk \
	tun vhost_net vhost_vsock bridge veth

cat >"$STAGE/manifest" <<EOF
key: $KEY
kernel-package: $KNAME $KVER
kernel-release: $KREL
rt-kernel-package: $RTNAME $RTVER
rt-kernel-release: $RTREL
busybox-package: $BBNAME $BBVER
tool-packages: $(tr ' ' '=' <<<"$TOOLS" | xargs)
built: $(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF

# Install atomically-ish: every file is renamed into place; the manifest goes last.
for f in vmlinuz vmlinux vmlinuz-rt vmlinux-rt kernel.config kernel-rt.config initramfs.cpio.gz testhost-initramfs.cpio.gz; do
	mv -f "$STAGE/$f" "$OUT/$f"
done
ln -f "$OUT/vmlinux" "$OUT/.testhost-vmlinux.tmp" && mv -f "$OUT/.testhost-vmlinux.tmp" "$OUT/testhost-vmlinux"
mv -f "$STAGE/manifest" "$OUT/manifest"

T_END=$(date +%s.%N)
[ "$QUIET" = 1 ] || awk -v a="$T_START" -v b="$T_END" 'BEGIN{printf "built in %.1f s\n", b-a}'
show_outputs
