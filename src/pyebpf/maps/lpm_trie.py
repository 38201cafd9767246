"""Longest-prefix-match tries: LPM_TRIE (kernel/bpf/lpm_trie.c).

A key is ``struct bpf_lpm_trie_key_u8``: a host-endian u32 ``prefixlen``
followed by ``key_size - 4`` data bytes, read as one big-endian bit string
(data[0] holds the most significant bits). An element is a prefix; a lookup
(from a program *and* from MAP_LOOKUP_ELEM) returns the value of the longest
stored prefix that matches the key's first ``prefixlen`` bits, while update
and delete work on the exact prefix.

The trie is the kernel's, node for node: a binary tree of real and
intermediate nodes (an intermediate node only splits two subtrees and always
has two children), built by the same insertion and deletion rules, so that
MAP_GET_NEXT_KEY walks it in the kernel's order: post-order (more specific
prefixes before the prefixes containing them, child 0 before child 1), a
missing or malformed key restarting from the leftmost node. As on the kernel,
a node stores the data bytes of the key that created it verbatim, bits past
the prefix length included, and those are what get_next_key returns.

Creation needs BPF_F_NO_PREALLOC; key_size is 5..260, value_size
1..(KMALLOC_MAX_SIZE - 256 - 24); a full trie refuses new prefixes with
ENOSPC; update flags are the modes (BPF_NOEXIST on an existing prefix is
EEXIST, BPF_EXIST on a missing one ENOENT).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import BpfError
from ..memory import Region
from ..uapi import BPF_EXIST, BPF_NOEXIST, MapFlags, MapType
from . import register_map
from .base import KMALLOC_MAX_SIZE, BpfMap, map_flags_access_ok

if TYPE_CHECKING:
    from ..attr import MapCreateAttr
    from ..runtime import Runtime

__all__ = ["LpmTrieMap", "lpm_key"]

LPM_DATA_SIZE_MAX = 256
LPM_DATA_SIZE_MIN = 1
#: sizeof(struct lpm_trie_node) (child[2], prefixlen, flags) since Linux 6.14.
LPM_TRIE_NODE_SIZE = 24
LPM_VAL_SIZE_MAX = KMALLOC_MAX_SIZE - LPM_DATA_SIZE_MAX - LPM_TRIE_NODE_SIZE
LPM_VAL_SIZE_MIN = 1
LPM_KEY_SIZE_MIN = 4 + LPM_DATA_SIZE_MIN
LPM_KEY_SIZE_MAX = 4 + LPM_DATA_SIZE_MAX
LPM_CREATE_FLAG_MASK = (MapFlags.NO_PREALLOC | MapFlags.NUMA_NODE | MapFlags.RDONLY
                        | MapFlags.WRONLY | MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG)


def lpm_key(prefixlen: int, data: bytes) -> bytes:
    """The key bytes of ``data/prefixlen`` (prefixlen in host order, x86: little)."""
    return prefixlen.to_bytes(4, "little") + bytes(data)


class _Node:
    """A ``struct lpm_trie_node``; ``region`` holds the value (None: intermediate)."""

    __slots__ = ("child", "data", "im", "prefixlen", "region")

    def __init__(self, prefixlen: int, data: bytes, region: Region | None, im: bool) -> None:
        self.prefixlen = prefixlen
        self.data = data
        self.region = region
        self.im = im
        self.child: list[_Node | None] = [None, None]

    def __repr__(self) -> str:
        return f"<{'IM ' if self.im else ''}{self.data.hex()}/{self.prefixlen}>"


def _extract_bit(data: bytes, index: int) -> int:
    return (data[index // 8] >> (7 - index % 8)) & 1


@register_map(MapType.LPM_TRIE)
class LpmTrieMap(BpfMap):
    """BPF_MAP_TYPE_LPM_TRIE."""

    @classmethod
    def alloc_check(cls, attr: MapCreateAttr, runtime: Runtime) -> None:
        """The trie has no map_alloc_check: trie_alloc checks (after the permission check)."""

    def __init__(self, runtime: Runtime, attr: MapCreateAttr) -> None:
        flags = attr.map_flags
        if (attr.max_entries == 0 or not flags & MapFlags.NO_PREALLOC
                or flags & ~LPM_CREATE_FLAG_MASK or not map_flags_access_ok(flags)
                or not LPM_KEY_SIZE_MIN <= attr.key_size <= LPM_KEY_SIZE_MAX
                or not LPM_VAL_SIZE_MIN <= attr.value_size <= LPM_VAL_SIZE_MAX):
            raise BpfError(errno.EINVAL, "LPM tries need BPF_F_NO_PREALLOC, max_entries, "
                           f"key_size {LPM_KEY_SIZE_MIN}..{LPM_KEY_SIZE_MAX} and value_size "
                           f"{LPM_VAL_SIZE_MIN}..{LPM_VAL_SIZE_MAX}")
        super().__init__(runtime, attr)
        self.data_size = attr.key_size - 4
        self.max_prefixlen = self.data_size * 8
        self.root: _Node | None = None
        self.n_entries = 0

    # -- helpers ----------------------------------------------------------------------------
    def _split(self, key: bytes) -> tuple[int, bytes]:
        return int.from_bytes(key[:4], "little"), bytes(key[4:4 + self.data_size])

    def _match(self, node: _Node, prefixlen: int, data: bytes) -> int:
        """longest_prefix_match: leading equal bits of the data, capped at both lengths."""
        limit = min(node.prefixlen, prefixlen)
        diff = int.from_bytes(node.data, "big") ^ int.from_bytes(data, "big")
        common = self.max_prefixlen - diff.bit_length()
        return min(limit, common)

    def _region(self, value: bytes) -> Region:
        return self.runtime.memory.map(bytearray(value), kind="map_value",
                                       name=f"{self.name or self.id}")

    def _release(self, node: _Node | None) -> None:
        if node is not None and node.region is not None:
            self.runtime.unmap_later(node.region)
            node.region = None

    def _find(self, key: bytes) -> _Node | None:
        """trie_lookup_elem: the longest matching real node."""
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            return None
        found = None
        node = self.root
        while node is not None:
            matchlen = self._match(node, prefixlen, data)
            if matchlen == self.max_prefixlen:
                found = node
                break
            if matchlen < node.prefixlen:
                break
            if not node.im:
                found = node
            node = node.child[_extract_bit(data, node.prefixlen)]
        return found

    # -- ops ------------------------------------------------------------------------------------
    def lookup_elem(self, key: bytes) -> int | None:
        node = self._find(key)
        if node is None or node.region is None:
            return None
        return node.region.base

    def _check_add(self, flags: int) -> None:
        """trie_check_add_elem (counting the new prefix)."""
        if flags == BPF_EXIST:
            raise BpfError(errno.ENOENT, "no such prefix (BPF_EXIST)")
        if self.n_entries == self.max_entries:
            raise BpfError(errno.ENOSPC, f"trie is full ({self.max_entries} prefixes)")
        self.n_entries += 1

    def update_elem(self, key: bytes, value: bytes, flags: int) -> None:
        """trie_update_elem."""
        if flags > BPF_EXIST:
            raise BpfError(errno.EINVAL, f"invalid update flags {flags:#x}")
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            raise BpfError(errno.EINVAL, f"prefixlen {prefixlen} > {self.max_prefixlen}")
        # slot: (parent node or None for the root, child index)
        parent: _Node | None = None
        idx = 0
        node = self.root
        matchlen = 0
        while node is not None:
            matchlen = self._match(node, prefixlen, data)
            if node.prefixlen != matchlen or node.prefixlen == prefixlen:
                break
            parent, idx = node, _extract_bit(data, node.prefixlen)
            node = node.child[idx]

        def assign(new: _Node) -> None:
            if parent is None:
                self.root = new
            else:
                parent.child[idx] = new

        if node is None:
            self._check_add(flags)
            assign(_Node(prefixlen, data, self._region(value), False))
            return
        if node.prefixlen == matchlen:
            # The exact prefix: replace the node (an intermediate one becomes real).
            if not node.im:
                if flags == BPF_NOEXIST:
                    raise BpfError(errno.EEXIST, "prefix exists (BPF_NOEXIST)")
            else:
                self._check_add(flags)
            new = _Node(prefixlen, data, self._region(value), False)
            new.child = list(node.child)
            assign(new)
            self._release(node)
            return
        self._check_add(flags)
        new = _Node(prefixlen, data, self._region(value), False)
        if matchlen == prefixlen:
            # The new prefix contains the node's: insert it above.
            new.child[_extract_bit(node.data, matchlen)] = node
            assign(new)
            return
        im = _Node(matchlen, node.data, None, True)
        if _extract_bit(data, matchlen):
            im.child = [node, new]
        else:
            im.child = [new, node]
        assign(im)

    def delete_elem(self, key: bytes) -> None:
        """trie_delete_elem."""
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            raise BpfError(errno.EINVAL, f"prefixlen {prefixlen} > {self.max_prefixlen}")
        # trim: the slot holding node; trim2: the slot holding its parent.
        trim: tuple[_Node | None, int] = (None, 0)
        trim2: tuple[_Node | None, int] = (None, 0)
        parent: _Node | None = None
        node = self.root
        matchlen = 0
        while node is not None:
            matchlen = self._match(node, prefixlen, data)
            if node.prefixlen != matchlen or node.prefixlen == prefixlen:
                break
            parent = node
            trim2 = trim
            idx = _extract_bit(data, node.prefixlen)
            trim = (node, idx)
            node = node.child[idx]
        if (node is None or node.prefixlen != prefixlen or node.prefixlen != matchlen
                or node.im):
            raise BpfError(errno.ENOENT, "no such prefix")

        def assign(slot: tuple[_Node | None, int], new: _Node | None) -> None:
            owner, i = slot
            if owner is None:
                self.root = new
            else:
                owner.child[i] = new

        self.n_entries -= 1
        if node.child[0] is not None and node.child[1] is not None:
            node.im = True
            self._release(node)
            return
        if (parent is not None and parent.im and node.child[0] is None
                and node.child[1] is None):
            other = parent.child[1] if node is parent.child[0] else parent.child[0]
            assign(trim2, other)
            self._release(node)
            return
        assign(trim, node.child[0] if node.child[0] is not None else node.child[1])
        self._release(node)

    def get_next_key(self, key: bytes | None) -> bytes:
        """trie_get_next_key: post-order, more specific prefixes first."""
        search_root = self.root
        if search_root is None:
            raise BpfError(errno.ENOENT, "the trie is empty")
        start: _Node | None = search_root
        if key is not None:
            prefixlen, data = self._split(key)
            if prefixlen <= self.max_prefixlen:
                stack: list[_Node] = []
                node: _Node | None = search_root
                matchlen = 0
                while node is not None:
                    stack.append(node)
                    matchlen = self._match(node, prefixlen, data)
                    if node.prefixlen != matchlen or node.prefixlen == prefixlen:
                        break
                    node = node.child[_extract_bit(data, node.prefixlen)]
                if node is not None and node.prefixlen == matchlen and not node.im:
                    # The key's node is found: the next one in post-order.
                    start = None
                    node = stack[-1]
                    sp = len(stack) - 1
                    while sp > 0:
                        par = stack[sp - 1]
                        if par.child[0] is node and par.child[1] is not None:
                            start = par.child[1]
                            break
                        if not par.im:
                            return lpm_key(par.prefixlen, par.data)
                        node = par
                        sp -= 1
                    if start is None:
                        raise BpfError(errno.ENOENT, "no more keys")
        # find_leftmost: the leftmost non-intermediate node below start.
        next_node: _Node | None = None
        node = start
        while node is not None:
            if node.im:
                node = node.child[0]
            else:
                next_node = node
                node = node.child[0]
                if node is None:
                    node = next_node.child[1]
        assert next_node is not None
        return lpm_key(next_node.prefixlen, next_node.data)

    def free(self) -> None:
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node is not None:
                self._release(node)
                stack.extend(node.child)
        self.root = None
        self.n_entries = 0
        super().free()

    supports_batch = True
