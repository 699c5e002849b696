# Helpers shared by the initramfs /init scripts (busybox sh). Installed as /etc/bulkhead/lib.sh.

# Number of online CPUs, from /sys/devices/system/cpu/online ("0-1,4"), else nproc.
bh_online_cpus() {
	_n=0
	if [ -r /sys/devices/system/cpu/online ]; then
		_save_ifs=$IFS
		IFS=,
		for _r in $(cat /sys/devices/system/cpu/online); do
			case $_r in
			*-*) _n=$((_n + ${_r#*-} - ${_r%-*} + 1)) ;;
			[0-9]*) _n=$((_n + 1)) ;;
			esac
		done
		IFS=$_save_ifs
	fi
	[ "$_n" -gt 0 ] 2>/dev/null || _n=$(nproc 2>/dev/null || echo 0)
	echo "$_n"
}

# Decode a bh.cmd= value: `+` -> space, `%XX` -> byte 0xXX (backslashes are kept literally).
bh_decode() {
	printf '%b' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/+/ /g' \
		-e 's/%\([0-9A-Fa-f][0-9A-Fa-f]\)/\\x\1/g')"
}

# The VirtIO modules shipped in the guest initramfs (their dependencies come from modules.dep).
BH_VIRTIO_MODULES="virtio_mmio virtio_pci virtio_blk virtio_net virtio_console virtio_rng vmw_vsock_virtio_transport"

# bh_load_modules [MODULE...]: modprobe each (default: the VirtIO set). Returns non-zero if any
# failed to load.
bh_load_modules() {
	[ $# -gt 0 ] || set -- $BH_VIRTIO_MODULES
	_rc=0
	for _m in "$@"; do
		if ! modprobe "$_m"; then
			echo "bulkhead-init: modprobe $_m failed" >&2
			_rc=1
		fi
	done
	return $_rc
}
