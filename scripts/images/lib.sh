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
# The health monitor's guest side: the IB700 watchdog (/dev/watchdog; ports 0x441/0x443, no
# discovery: loading it is enough) and pvpanic-mmio (binds the ACPI device QEMU0001).
BH_HEALTH_MODULES="ib700wdt pvpanic_mmio"

# bh_load_modules [MODULE...]: modprobe each (default: the VirtIO set); the words `virtio` and
# `health` stand for the two sets above. Returns non-zero if any failed to load.
bh_load_modules() {
	[ $# -gt 0 ] || set -- virtio
	_list=
	for _m in "$@"; do
		case $_m in
		virtio) _list="$_list $BH_VIRTIO_MODULES" ;;
		health) _list="$_list $BH_HEALTH_MODULES" ;;
		*) _list="$_list $_m" ;;
		esac
	done
	_rc=0
	for _m in $_list; do
		if ! modprobe "$_m"; then
			echo "bulkhead-init: modprobe $_m failed" >&2
			_rc=1
		fi
	done
	return $_rc
}

# Waits until everything written to the console has left the UART: `poweroff -f` right after
# a burst of output would otherwise cut off its last lines, still in the tty's buffer (seen
# with the PREEMPT_RT kernel, whose serial interrupt runs in a thread). Busybox stty sets the
# terminal's settings again (unchanged) with tcsetattr(TCSADRAIN), which waits for the drain.
bh_drain_console() {
	_tty=$(stty -F /dev/console -g 2>/dev/null) && stty -F /dev/console "$_tty" 2>/dev/null
	return 0
}
