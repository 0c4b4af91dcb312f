"""The visit state machine over a whole released batch at once, for debounce_s = 0 (the default).

Without debounce a certain ping's fence set IS its device's visit state after it, and a signal
loss empties it. So every ENTER, EXIT and dwell follows from comparing each state-setting
*node* (a certain ping, a loss, and the open visits a device starts the batch with) with the
node before it of the same device. That is done on (node, fence) pairs sorted by device, fence
and time: a run of pairs on consecutive nodes is one visit, its first pair an ENTER (unless it
was open before the batch), and its end an EXIT at the next node. Events, totals and state
come out exactly as Machine.observe and Machine.lose make them one ping at a time in
Engine._walk, in the same order: tests/geofence/test_engine_sweep.py holds the two to that.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

import numpy as np

from geofence.events import Event, EventType, ExitReason
from geofence.machine import Machine
from geofence.pings import FloatArray, IntArray, ObjArray
from geofence.reorder import Held

_TYPES = (EventType.ENTER, EventType.EXIT, EventType.SIGNAL_LOST, EventType.SIGNAL_RESTORED)
_REASONS = np.array([ExitReason.LEFT, ExitReason.SIGNAL_LOST], dtype=object)
_START, _PING, _LOSS = 0, 1, 2


def sweep(
    machine: Machine,
    r: Held,
    certain: np.ndarray,
    pk: IntArray,
    fi: IntArray,
    losses: tuple[IntArray, IntArray, IntArray],
    lost_before: np.ndarray,
    prev_ts: FloatArray,
    ids: ObjArray,
    position: Mapping[str, int],
) -> list[Event] | None:
    """The events of released batch r in stream order, with the machine's state moved past it.

    pk, fi: (batch row, fence position) of every certain ping inside a fence, sorted by row;
    losses: (position, slot, batch row of the last fix or -1) of each signal loss, found in the
    batch. None (nothing changed) when an open visit names a fence the index lacks, or the batch
    has no certain ping and no loss.
    """
    dev = machine.devices
    loss_at, loss_slot, loss_fix = losses
    ck = np.flatnonzero(certain)
    in_play = np.unique(np.concatenate((r.slot[ck], loss_slot)))
    st_slot: list[int] = []
    st_fence: list[int] = []
    st_start: list[float] = []
    for s in in_play.tolist():
        for f, t0 in machine.inside.get(s, {}).items():
            p = position.get(f)
            if p is None:
                return None
            st_slot.append(s)
            st_fence.append(p)
            st_start.append(t0)
    start_slots = np.unique(np.array(st_slot, dtype=np.int64))

    # Nodes sorted by device, then time; a loss sits just before the ping at its position.
    ns, nc = len(start_slots), len(ck)
    kind = np.concatenate((np.full(ns, _START), np.full(nc, _PING), np.full(len(loss_at), _LOSS)))
    slot = np.concatenate((start_slots, r.slot[ck], loss_slot))
    key = np.concatenate((np.full(ns, -2), 2 * ck, 2 * loss_at - 1))
    row = np.concatenate((np.full(ns, -1), ck, loss_fix))  # batch row of the node's fix, -1: before the batch
    order = np.lexsort((key, slot))
    kind, slot, key, row = kind[order], slot[order], key[order], row[order]
    n = len(order)
    if not n:  # only uncertain pings: too rare to be worth columns
        return None
    node_of = np.empty(n, dtype=np.int64)
    node_of[order] = np.arange(n)
    known = row >= 0
    rr = np.maximum(row, 0)
    ts = np.where(known, r.ts[rr], dev.last_ts[slot])
    same_prev = np.zeros(n, dtype=bool)
    same_prev[1:] = slot[1:] == slot[:-1]
    has_next = np.append(same_prev[1:], False)

    # (node, fence) pairs sorted by device, fence, time; a pair on the next node of its pair continues a visit.
    p_node = node_of[np.concatenate((np.searchsorted(start_slots, st_slot), ns + np.searchsorted(ck, pk)))]
    p_fence = np.concatenate((np.array(st_fence, dtype=np.int64), fi))
    p_val = np.concatenate((np.array(st_start, dtype=np.float64), r.ts[pk]))
    p_slot = slot[p_node]
    po = np.lexsort((p_node, p_fence, p_slot))
    p_node, p_fence, p_val, p_slot = p_node[po], p_fence[po], p_val[po], p_slot[po]
    cont = np.zeros(len(po), dtype=bool)
    cont[1:] = (p_slot[1:] == p_slot[:-1]) & (p_fence[1:] == p_fence[:-1]) & (p_node[1:] == p_node[:-1] + 1)
    first = np.flatnonzero(~cont)
    start = p_val[first][np.cumsum(~cont) - 1]  # each pair's visit start
    run_end = np.append(~cont[1:], True)
    enter = ~cont & (kind[p_node] == _PING)
    ends = run_end & has_next[p_node]
    open_now = run_end & ~has_next[p_node]
    x_node = p_node[ends] + 1
    x_dwell = ts[x_node] - start[ends]

    # Time inside any fence: a node whose set shares no fence with the previous one empties
    # it (if it was not empty) and fills it (if it is not empty), as Machine._close/_transition do.
    size = np.bincount(p_node, minlength=n)
    kept = np.bincount(p_node[cont], minlength=n)
    is_start = kind == _START
    fresh = (kept == 0) & ~is_start
    before = np.zeros(n, dtype=np.int64)
    before[1:] = size[:-1]
    emptied = fresh & same_prev & (before > 0)
    filled = fresh & (size > 0)
    fill_ts = np.where(is_start, dev.covered_since[slot], ts)
    last_fill = np.maximum.accumulate(np.where(filled | is_start, np.arange(n), -1))
    e = np.flatnonzero(emptied)
    np.add.at(dev.covered_s, slot[e], ts[e] - fill_ts[last_fill[e - 1]])
    tail = np.flatnonzero(~has_next)
    dev.covered_since[slot[tail]] = np.where(size[tail] > 0, fill_ts[np.maximum(last_fill[tail], 0)], np.nan)

    # Fence ids' rank in string order (events of one ping or loss are sorted by fence id), then a 0 for "no fence".
    fence_rank = np.zeros(len(ids) + 1, dtype=np.int64)
    fence_rank[np.argsort(ids, kind="stable")] = np.arange(len(ids))
    events = _events(machine, r, ids, fence_rank, kind, slot, key, row, ts, p_node[enter], p_fence[enter], x_node,
                     p_fence[ends], x_dwell, lost_before, prev_ts)  # fmt: skip
    _settle(machine, ids, fence_rank, in_play, p_slot, p_fence, enter, ends, x_dwell, open_now, start)
    return events


def _events(
    machine: Machine,
    r: Held,
    ids: ObjArray,
    fence_rank: IntArray,
    kind: IntArray,
    slot: IntArray,
    key: IntArray,
    row: IntArray,
    ts: FloatArray,
    in_node: IntArray,
    in_fence: IntArray,
    x_node: IntArray,
    x_fence: IntArray,
    x_dwell: FloatArray,
    lost_before: np.ndarray,
    prev_ts: FloatArray,
) -> list[Event]:
    """The events as columns, ordered as Engine._walk emits them: by stream position; at one
    position the losses (by device: its exits by fence id, then SIGNAL_LOST), then the ping's
    SIGNAL_RESTORED, exits and enters (each by fence id)."""
    dev = machine.devices
    lost_nodes = np.flatnonzero(kind == _LOSS)
    back = np.flatnonzero(lost_before)
    back_node = np.full(len(back), -1)
    node = np.concatenate((in_node, x_node, lost_nodes, back_node))
    counts = (len(in_node), len(x_node), len(lost_nodes), len(back))
    type_ = np.repeat(np.arange(4), counts)
    fence = np.concatenate((in_fence, x_fence, np.full(len(lost_nodes) + len(back), -1)))
    nn = np.maximum(node, 0)
    back_row = np.append(np.zeros(len(node) - len(back), np.int64), back)  # restored: the ping's row
    pos = np.where(node >= 0, (key[nn] + 1) // 2, back_row)
    phase = np.where(node >= 0, kind[nn] == _PING, True)
    sub = np.array([2, 1, 3, 0])[type_]
    frank = fence_rank[fence]  # -1: no fence, its rank is the appended 0
    dev_slot = np.where(node >= 0, slot[nn], r.slot[back_row])
    perm = np.lexsort((frank, sub, dev_slot, phase, pos))

    # Each event's fix: a batch row, or (a loss after an earlier batch's last ping) the device's last fix.
    fix_row = np.where(node >= 0, row[nn], back_row)[perm]
    node, type_, fence, dev_slot = node[perm], type_[perm], fence[perm], dev_slot[perm]
    known = fix_row >= 0
    fr = np.maximum(fix_row, 0)
    s = dev_slot
    t = np.where(node >= 0, ts[np.maximum(node, 0)], r.ts[fr])
    lat = np.where(known, r.lat[fr], dev.last_lat[s])
    lon = np.where(known, r.lon[fr], dev.last_lon[s])
    extras = np.where(known, r.extras[fr], dev.extras[s])
    m = len(perm)
    fence_id = np.full(m, None, dtype=object)
    has_fence = fence >= 0
    fence_id[has_fence] = ids[fence[has_fence]]
    dwell = np.full(m, None, dtype=object)
    reason = np.full(m, None, dtype=object)
    is_exit = type_ == 1
    dwell_sorted = np.empty(m)
    dwell_sorted[np.argsort(perm)[len(in_node) : len(in_node) + len(x_node)]] = x_dwell
    dwell[is_exit] = dwell_sorted[is_exit].tolist()
    reason[is_exit] = _REASONS[(kind[np.maximum(node[is_exit], 0)] == _LOSS).astype(np.int64)]
    gap = np.full(m, None, dtype=object)
    back_ev = type_ == 3
    gap[back_ev] = (r.ts[fr[back_ev]] - prev_ts[fr[back_ev]]).tolist()
    gap_start = np.full(m, None, dtype=object)
    lost_ev = type_ == 2
    gap_start[lost_ev] = t[lost_ev].tolist()
    version = np.full(m, None, dtype=object)
    version[type_ < 2] = machine.fence_version
    types = [_TYPES[k] for k in type_.tolist()]
    columns = (
        types, dev.ids[s].tolist(), fence_id.tolist(), t.tolist(), lat.tolist(), lon.tolist(), dwell.tolist(),
        reason.tolist(), gap.tolist(), gap_start.tolist(), extras.tolist(), version.tolist(),
    )  # fmt: skip
    # Tens of thousands of new tuples set off the cyclic garbage collector again and again, to
    # find no cycle: they hold only strings, numbers, enums and the pings' own extras.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return list(map(Event, *columns))
    finally:
        if collecting:
            gc.enable()


def _settle(
    machine: Machine,
    ids: ObjArray,
    fence_rank: IntArray,
    in_play: IntArray,
    p_slot: IntArray,
    p_fence: IntArray,
    enter: np.ndarray,
    ends: np.ndarray,
    x_dwell: FloatArray,
    open_now: np.ndarray,
    start: FloatArray,
) -> None:
    """Open visits after the batch (in the order Machine would have inserted them) and the
    ledger: visits counted, closed dwell added in time order, as Machine adds them."""
    for s in in_play.tolist():
        machine.inside.pop(s, None)
    o = np.flatnonzero(open_now)
    o = o[np.lexsort((fence_rank[p_fence[o]], start[o], p_slot[o]))]
    for s, f, t0 in zip(p_slot[o].tolist(), ids[p_fence[o]].tolist(), start[o].tolist(), strict=True):
        visits = machine.inside.get(s)
        if visits is None:
            visits = machine.inside[s] = {}
        visits[f] = t0
    pair = p_slot * max(len(ids), 1) + p_fence
    touched = enter | ends
    keys, first, inv = np.unique(pair[touched], return_index=True, return_inverse=True)
    k_slot, k_pos = keys // max(len(ids), 1), keys % max(len(ids), 1)
    k_fence = ids[k_pos].tolist()
    ledger = machine.ledger
    dwell = np.array(
        [ledger.get(s, {}).get(f, (0, 0.0))[1] for s, f in zip(k_slot.tolist(), k_fence, strict=True)],
        dtype=np.float64,
    )
    np.add.at(dwell, inv[ends[touched]], x_dwell)
    visits_added = np.bincount(inv[enter[touched]], minlength=len(keys))
    # New entries go in as Machine inserts them: by first visit, then fence id.
    by_first = np.lexsort((fence_rank[k_pos], start[touched][first], k_slot)).tolist()
    for i in by_first:
        s, f, v, d = int(k_slot[i]), k_fence[i], int(visits_added[i]), float(dwell[i])
        fences = ledger.get(s)
        if fences is None:
            fences = ledger[s] = {}
        entry = fences.get(f)
        if entry is None:
            fences[f] = [v, d]
        else:
            entry[0] += v
            entry[1] = d
