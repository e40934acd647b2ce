"""What runs inside a lab VM: part of the image recipe (changing any of it rebuilds the image).

Boot: the kernel starts the initramfs's /init (busybox sh), which loads the few modules needed
to reach the disk and the network, mounts the overlay disk and switches to it with busybox's
init as PID 1 (it reaps orphans and handles reboot/poweroff). Its only inittab job, BOOT below,
mounts what BPF needs, takes the VM's identity from QEMU's fw_cfg (hostname, authorized key,
SSH host key — so one cached image serves every lab and every VM), starts sshd and prints the
readiness marker on the serial console."""
from __future__ import annotations

READY = "BPFLEET-LAB-READY"
FAILED = "BPFLEET-LAB-FAILED"
FW_CFG = "opt/bpfleet"          # fw_cfg file names: opt/bpfleet/{hostname,authorized_keys,host_key}
GUEST_ADDR = "10.0.2.15"        # QEMU user-mode networking's first guest address

# Modules the initramfs loads (with their modules.dep closure), in this order.
STAGE1_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "qemu_fw_cfg", "crc32c_generic", "ext4"]

INIT = f"""#!/bin/busybox sh
/bin/busybox mkdir -p /bin /proc /sys /dev /newroot
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do insmod "/modules/$m" || echo "{FAILED}: insmod $m"; done
for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    echo "{FAILED}: cannot mount /dev/vda"; sleep 1; poweroff -f
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /bin/busybox init
"""

INITTAB = """\
::sysinit:/usr/local/sbin/bpfleet-lab-boot
::ctrlaltdel:/bin/busybox reboot
::shutdown:/bin/busybox sh -c 'killall sshd; sync; mount -o remount,ro /'
"""

BOOT = f"""#!/bin/sh
PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs /run
mount -t bpf bpf /sys/fs/bpf
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t securityfs securityfs /sys/kernel/security
mount -t cgroup2 cgroup2 /sys/fs/cgroup
cfg=/sys/firmware/qemu_fw_cfg/by_name/{FW_CFG}
hostname "$(cat $cfg/hostname/raw)"
hostname > /etc/hostname
mkdir -p /etc/bpfleet
hostname > /etc/bpfleet/lab-host
install -d -m 700 /root/.ssh
cat $cfg/authorized_keys/raw > /root/.ssh/authorized_keys
install -m 600 $cfg/host_key/raw /etc/ssh/ssh_host_ed25519_key
ip link set lo up
ip link set eth0 up
ip addr add {GUEST_ADDR}/24 dev eth0
mkdir -p /run/sshd /run/bpfleet
if /usr/sbin/sshd -E /var/log/sshd.log; then
    echo "{READY} $(hostname) $(uname -r)" > /dev/console
else
    echo "{FAILED}: sshd did not start: $(tail -n 3 /var/log/sshd.log)" > /dev/console
fi
"""

SSHD_DROPIN = """\
# bpfleet lab VM
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
"""

# path in the image -> (mode, text)
ROOTFS_FILES = {
    "etc/inittab": (0o644, INITTAB),
    "usr/local/sbin/bpfleet-lab-boot": (0o755, BOOT),
    "etc/ssh/sshd_config.d/bpfleet-lab.conf": (0o644, SSHD_DROPIN),
    "etc/hostname": (0o644, "bpfleet-lab-vm\n"),
    "etc/hosts": (0o644, "127.0.0.1 localhost\n::1 localhost\n"),
    "etc/fstab": (0o644, "# mounts are made by /usr/local/sbin/bpfleet-lab-boot\n"),
    "etc/resolv.conf": (0o644, "# lab VMs have no network beyond this machine's port forwards\n"),
}
