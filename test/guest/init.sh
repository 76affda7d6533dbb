#!/bin/busybox sh
# /init of the vstor test guest (busybox initramfs, see test/helpers/guest.ts).
#
# Reads its task from the kernel command line (vstor.task=write|check|hang),
# works on /dev/vda, prints markers on the serial console and powers off.
# Markers, one per line:  VSTOR-OK <what>   VSTOR-FAIL <why>   VSTOR-FILE <line>
#                         VSTOR-MD5 <sum>   VSTOR-DONE <task>
# Every way out ends the VM: on failure we print VSTOR-FAIL and power off, and
# if this script dies the kernel panics and (panic=-1, qemu -no-reboot) qemu exits.
#
# Layout of the 64 MiB disk (the host test checks the same numbers):
#   [0, 32M)            ext2, made by `mke2fs /dev/vda 32768` (KiB)
#   40M+512, 588890 B   `seq -w 0 99999` text (6 bytes a line; last line cut short)
#   48M, 64K            0xa5
#   52M+4K, 132K        0x3c
#   56M-8K, 16K         0x69 (crosses a 1 MiB unit edge)
#   64M-64K, 64K        0xe7 (ends at the end of the disk)
# Everything else in [32M, 64M) stays zero.

/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /mnt /tmp
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
exec </dev/console >/dev/console 2>&1
echo

say() { echo "VSTOR-$*"; }
fail() {
  say "FAIL $*"
  sync
  poweroff -f
  sleep 1000
}

for m in $(cat /lib/modules/load-order); do
  insmod "/lib/modules/$m.ko" || fail "insmod $m"
done

i=0
while [ ! -b /dev/vda ]; do
  i=$((i + 1))
  [ $i -gt 200 ] && fail "no /dev/vda after 20 s"
  usleep 100000
done
say "OK vda $(cat /sys/block/vda/size) sectors"

task=$(sed -n 's/.*vstor\.task=\([^ ]*\).*/\1/p' /proc/cmdline)
M=1048576

# pattern NAME BYTE_OCTAL LENGTH -> /tmp/NAME holding LENGTH copies of the byte
pattern() {
  dd if=/dev/zero bs="$3" count=1 2>/dev/null | tr '\000' "\\$2" >"/tmp/$1"
}

# Regions: name and offset; /tmp/NAME holds the bytes. Written with fsync, read
# back after dropping the guest's caches so the bytes come from the disk.
make_patterns() {
  seq -w 0 99999 | head -c 588890 >/tmp/text
  pattern a5 245 65536
  pattern 3c 074 135168
  pattern 69 151 16384
  pattern e7 347 65536
}
regions() {
  echo "text $((40 * M + 512))"
  echo "a5 $((48 * M))"
  echo "3c $((52 * M + 4096))"
  echo "69 $((56 * M - 8192))"
  echo "e7 $((64 * M - 65536))"
}

write_regions() {
  regions | while read -r name off; do
    dd if="/tmp/$name" of=/dev/vda bs=4096 seek="$off" oflag=seek_bytes conv=notrunc,fsync 2>/dev/null || fail "write $name"
  done
}

check_regions() {
  blockdev --flushbufs /dev/vda
  echo 3 >/proc/sys/vm/drop_caches
  regions | while read -r name off; do
    len=$(stat -c %s "/tmp/$name")
    dd if=/dev/vda of="/tmp/back" bs=4096 skip="$off" count="$len" iflag=skip_bytes,count_bytes 2>/dev/null || fail "read $name"
    cmp "/tmp/$name" /tmp/back || fail "pattern $name differs at offset $off"
    say "OK pattern $name"
  done
}

case "$task" in
  write)
    mke2fs -q -F /dev/vda 32768 || fail "mke2fs"
    say "OK mke2fs"
    make_patterns
    write_regions
    check_regions
    mount -t ext2 /dev/vda /mnt || fail "mount ext2"
    echo "hello from the vstor guest" >/mnt/hello.txt
    seq 1 200000 >/mnt/numbers.txt
    say "MD5 $(md5sum </mnt/numbers.txt | cut -d' ' -f1)"
    sync
    umount /mnt || fail "umount"
    say "OK fs written"
    ;;
  check)
    make_patterns
    check_regions
    mount -t ext2 -o ro /dev/vda /mnt || fail "mount ext2"
    while read -r line; do say "FILE $line"; done </mnt/hello.txt
    say "MD5 $(md5sum </mnt/numbers.txt | cut -d' ' -f1)"
    umount /mnt || fail "umount"
    ;;
  hang)
    say "OK hanging"
    sleep 100000
    ;;
  *)
    fail "unknown task '$task'"
    ;;
esac

sync
say "DONE $task"
poweroff -f
sleep 1000
