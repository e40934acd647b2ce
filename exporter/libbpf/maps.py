"""Reading and writing BPF maps (batch syscalls first) and consuming ring buffers."""
from __future__ import annotations

import ctypes as C
import errno
import mmap
import struct
from typing import Callable

from . import ffi, uapi
from .ffi import LibbpfError

_STOP = -errno.ECANCELED   # what the ring buffer callback returns to stop a consume at its limit
_POS = struct.Struct("<Q")
_BATCH_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, 524}  # 524: ENOTSUPP, the kernel-internal one


def _round8(n: int) -> int:
    return (n + 7) & ~7


class MapReader:
    """Reads a whole map into two flat buffers, reusing them scrape after scrape.

    Per-CPU maps return each value as `ncpus` slots of round_up(value_size, 8) bytes, as the
    kernel lays them out."""

    def __init__(self, fd: int, key_size: int, value_size: int, max_entries: int, ncpus: int = 1):
        self.fd, self.key_size, self.max_entries = fd, key_size, max(max_entries, 1)
        self.value_stride = _round8(value_size) * ncpus if ncpus > 1 else value_size
        self._keys = C.create_string_buffer(self.key_size * self.max_entries)
        self._values = C.create_string_buffer(self.value_stride * self.max_entries)
        self._token_in = C.create_string_buffer(max(key_size, 8))
        self._token_out = C.create_string_buffer(max(key_size, 8))
        self._opts = uapi.bpf_map_batch_opts(C.sizeof(uapi.bpf_map_batch_opts), 0, 0)
        self.batch = True

    def read(self) -> tuple[memoryview, memoryview, int]:
        """-> (keys, values, count): views into the reader's buffers, valid until the next read."""
        n = self._read_batch() if self.batch else None
        if n is None:
            self.batch = False
            n = self._read_iter()
        return (memoryview(self._keys).cast("B")[: n * self.key_size],
                memoryview(self._values).cast("B")[: n * self.value_stride], n)

    def _read_batch(self) -> int | None:
        done, token = 0, None
        while done < self.max_entries:
            count = C.c_uint32(self.max_entries - done)
            rc = ffi.lookup_batch(self.fd, token, self._token_out,
                                   C.byref(self._keys, done * self.key_size),
                                   C.byref(self._values, done * self.value_stride),
                                   C.byref(count), C.byref(self._opts))
            err = -rc if rc < 0 else 0
            if rc < 0 and err in _BATCH_UNSUPPORTED and done == 0:
                return None
            if rc < 0 and err != errno.ENOENT:
                raise LibbpfError(f"batch lookup on map fd {self.fd}", err)
            done += count.value
            if rc < 0:  # ENOENT: no more elements
                return done
            C.memmove(self._token_in, self._token_out, len(self._token_in))
            token = self._token_in
        return done

    def _read_iter(self) -> int:
        n, prev = 0, None
        key = C.create_string_buffer(self.key_size)
        while n < self.max_entries and ffi.get_next_key(self.fd, prev, key) == 0:
            C.memmove(C.byref(self._keys, n * self.key_size), key, self.key_size)
            if ffi.lookup_elem(self.fd, key, C.byref(self._values, n * self.value_stride)) == 0:
                n += 1
            prev = C.byref(self._keys, (n - 1) * self.key_size) if n else key
        return n


def update_batch(fd: int, keys: bytes, values: bytes, count: int) -> None:
    n = C.c_uint32(count)
    opts = uapi.bpf_map_batch_opts(C.sizeof(uapi.bpf_map_batch_opts), 0, 0)
    ffi.check(ffi.update_batch(fd, keys, values, C.byref(n), C.byref(opts)),
               f"batch update on map fd {fd}")


def lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    out = C.create_string_buffer(value_size)
    return out.raw if ffi.lookup_elem(fd, key, out) == 0 else None


def update(fd: int, key: bytes, value: bytes, flags: int = 0) -> bool:
    """-> False when flags is BPF_NOEXIST and the key exists already."""
    rc = ffi.update_elem(fd, key, value, flags)
    if rc < 0 and flags == uapi.BPF_NOEXIST and -rc == errno.EEXIST:
        return False
    ffi.check(rc, f"update map fd {fd}")
    return True


def delete(fd: int, key: bytes) -> bool:
    """-> False when the key was not there."""
    rc = ffi.delete_elem(fd, key)
    if rc < 0 and -rc == errno.ENOENT:
        return False
    ffi.check(rc, f"delete from map fd {fd}")
    return True


def keys(fd: int, key_size: int, limit: int) -> list[bytes]:
    """Every key of a map (any type, LPM tries too), by get_next_key."""
    out, prev = [], None
    key = C.create_string_buffer(key_size)
    while len(out) < limit and ffi.get_next_key(fd, prev, key) == 0:
        out.append(key.raw)
        prev = C.create_string_buffer(key.raw, key_size)
    return out


class RingBuffer:
    """A libbpf ring_buffer over one map; `on_event(bytes)` runs in the consuming thread.

    `consume(limit)` hands on at most `limit` records and returns: libbpf's
    ring_buffer__consume keeps going while records keep arriving, so under a flood it would
    never return. The callback stops it after `limit` records by returning a negative value
    (libbpf then stores the consumer position past that record and returns the value); what is
    left stays in the kernel's ring, which is the back-pressure: once it is full, the
    program's bpf_ringbuf_reserve() fails (and the program can count that)."""

    def __init__(self, fd: int, on_event: Callable[[bytes], None], size: int = 0):
        self._limit = self._taken = 0

        def cb(_ctx, data, size):
            on_event(C.string_at(data, size))
            self._taken += 1
            return _STOP if self._taken >= self._limit else 0
        self._cb = ffi.RINGBUF_FN(cb)  # keep alive as long as the ring buffer
        self._rb = ffi.check_ptr(ffi.ringbuf_new(fd, self._cb, None, None), f"ring buffer fd {fd}")
        self.size = size
        # The consumer and producer position pages, read-only, for the backlog (libbpf 1.1 has
        # no ring__avail_data_size()).
        self._positions = mmap.mmap(fd, 2 * mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ)

    def poll(self, timeout_ms: int) -> int:
        return ffi.ringbuf_poll(self._rb, timeout_ms)

    def consume(self, limit: int = 2**31 - 1) -> tuple[int, bool]:
        """-> (records handed on, whether it stopped at `limit` rather than at an empty ring)."""
        self._taken, self._limit = 0, max(1, limit)
        rc = ffi.ringbuf_consume(self._rb)
        if rc < 0 and rc != _STOP:
            ffi.check(rc, "ring_buffer__consume")
        return self._taken, rc == _STOP

    def backlog_bytes(self) -> int:
        """Bytes written by the program and not consumed yet (record headers included)."""
        consumer = _POS.unpack_from(self._positions, 0)[0]
        producer = _POS.unpack_from(self._positions, mmap.PAGESIZE)[0]
        return max(0, producer - consumer)

    def close(self) -> None:
        if self._rb:
            ffi.ringbuf_free(self._rb)
            self._rb = None
        if self._positions is not None:
            self._positions.close()
            self._positions = None
