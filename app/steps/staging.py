"""The staging area: deletes that can be undone, journaled on disk so a crash undoes them.

A delete inside a transaction does not remove its target: it renames it into the root's
hidden area (``area.py``: reached through the sandbox, checked at each use, and which no
request path or glob can reach), after writing down where it came from. Renames keep
entries whole (contents, modes, timestamps, symlinks as links), so putting them back
restores the workspace exactly; the parent directories' times, which a rename changes,
are journaled and reset too. Layout::

    .stepd/lock                   flock: shared for plain batches, exclusive for atomic ones
    .stepd/trash/<txn>/journal    JSON lines; each fsynced before the moves it describes
    .stepd/trash/<txn>/<n>        the n-th entry moved aside

Journal records: ``{"stage": [{"n", "workspace", "path", "parentTimes"}, ...]}`` (before
the moves), then ``{"end": "commit"}`` or, once every entry is back, ``{"end": "abort"}``.
A transaction runs ``begin -> stage* -> commit | rollback``, then ``purge`` frees its
directory. ``commit`` and ``purge`` are separate steps so that purging can move to the
background: a directory whose journal has an end record (or has no journal: it is written
before anything moves and removed only by purging) holds nothing but garbage.

``Staging.recover`` rolls back every transaction without an end record (the process died
mid-batch), then purges every transaction directory (or hands them to the background
purger, ``purger.py``: ``hand_leftovers_to``). ``Staging.ready`` runs it once per
opening of the area, before a step runs: at start-up, or, when the filesystem refused
then (read-only, full), on the next request that tries again; and again when the area
was opened anew (it was moved, replaced or removed meanwhile). A transaction belongs to
the opening of the area it was made in: it never stages into, commits in or rolls back
from another. A plain batch needs no new space here (the lock file and
the journal are only for atomic batches), so deleting still works on a full disk.

A plain (non-atomic) delete uses the same trash without a journal: ``Detachment`` renames
its targets (directories and big files: ``worth_detaching``) into a fresh
``.stepd/trash/<id>/`` and the purger frees them later. No journal
and no fsync are needed there, because nothing is ever put back: each rename is atomic, so
a crash leaves every target either still in the workspace (the delete did not happen; the
client got no answer and retries) or in the trash, where a directory without a journal is
garbage that recovery purges. It is never half-deleted. Durability is that of an unlink
(neither is fsynced): after a power loss a target may reappear, as with ``rm``. When that
directory cannot be made or used (the area is refused, the filesystem is full or
read-only, the trash was removed or the area replaced meanwhile), the targets are removed
in place instead: a full disk, or a hostile ``.stepd``, must not stop deletes.

Errors about the area never carry its internal names (``area.anonymous``): a trash
directory's name is nobody's business.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.sandbox import Entry, Root
from app.sandbox.errors import (
    Busy,
    CrossDevice,
    FilesystemError,
    NoSpace,
    OutsideRoot,
    ReadOnlyFilesystem,
    SandboxError,
    from_os_error,
)
from app.sandbox.remove import Pace, no_pace
from app.sandbox.rename import rename_noreplace
from app.steps.area import (
    OWNER_SEPARATOR,
    Area,
    StateArea,
    Unusable,
    anonymous,
    hold,
    owned,
    owner_of,
)
from app.steps.errors import AtomicUnsupported

log = logging.getLogger(__name__)

JOURNAL = "journal"
LOCK = "lock"
# How many entries a purge removes between two checks that the area is still the root's.
_CHECK_EVERY = 64


class TxnState(StrEnum):
    OPEN = "open"  # no end record: roll back
    COMMITTED = "commit"  # the moves stand: purge
    ABORTED = "abort"  # rolled back: purge what could not go back


@dataclass(frozen=True)
class Move:
    """One journaled move: entry ``n`` of the transaction came from ``path`` in ``workspace``."""

    n: int
    workspace: str | None
    path: str
    parent_times: tuple[int, int]

    def record(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "workspace": self.workspace,
            "path": self.path,
            "parentTimes": list(self.parent_times),
        }

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Move:
        atime, mtime = data["parentTimes"]
        return cls(int(data["n"]), data["workspace"], str(data["path"]), (int(atime), int(mtime)))


@dataclass(frozen=True)
class Recovery:
    """What ``Staging.recover`` found: transactions rolled back, directories purged."""

    rolled_back: int
    purged: int


class Staging:
    """The root's staging area; one per process, shared by every request.

    Nothing is created on construction: the area (``area.StateArea``) is opened, and made,
    when first needed, so that a root that is read-only or full at start-up can still be
    served; it is checked again at every use. ``prepare`` makes it and recovers what a
    killed process left; ``ready`` recovers once per opening of the area, before a step
    runs. Until the area exists and is recovered, what needs it answers the filesystem's
    error (``ReadOnlyFilesystem``, ``NoSpace``...) and the next request tries again.

    ``shared=False`` says that no other process or thread works in the root (the
    ``stepd step`` command): plain batches then take no lock, so a root that never sees
    an atomic batch is never given a staging area. ``instance`` names this process among
    those serving the root (``area.py``: Instances); None, it owns every trash directory.
    """

    def __init__(self, root: Root, *, shared: bool = True, instance: str | None = None) -> None:
        self.root = root
        self.instance = instance
        self.area = StateArea(root, instance)
        self.shared = shared
        self._ready_mutex = threading.Lock()
        self._threads = _SharedLock()
        self._take_leftovers: Callable[[list[str]], None] | None = None

    def close(self) -> None:
        self.area.close()

    def hand_leftovers_to(self, take: Callable[[list[str]], None]) -> None:
        """Have recovery leave the transaction directories it finds (once rolled back
        where needed) to ``take``, the purger, instead of purging them."""
        self._take_leftovers = take

    def prepare(self) -> Recovery:
        """``ready``, then create the area and its lock file if missing (so that they
        need no space later). Raises ``Unusable`` when the area cannot be trusted, and
        ``SandboxError`` when the filesystem does not allow it yet (call it again later)."""
        recovery = self.ready(strict=True)
        with self.area.using() as area:
            assert area is not None
            fd = _open_lock(area, required=True)
            assert fd is not None
            os.close(fd)
        return recovery

    def ready(self, *, strict: bool = False) -> Recovery:
        """Make sure no transaction a killed process left in the area is still
        unrecovered: recover them once per opening of the area (see ``recover``). Needs no
        new space when there is nothing to recover. Raises the error that keeps recovery
        from running; until it succeeds, no step may run. An area that cannot be trusted
        holds nothing of ours to recover (``strict``: raise ``Unusable`` all the same)."""
        try:
            # Recovered already (every request but the first): no need to queue behind
            # the mutex, which serialises recovery only.
            with self.area.using(create=False) as area:
                if area is None or area.recovered:
                    return Recovery(0, 0)
            with self._ready_mutex, self.area.using(create=False) as area:
                if area is None or area.recovered:
                    return Recovery(0, 0)
                try:
                    recovery = self._recover_locked()
                except SandboxError:
                    if self.area.is_current(area):
                        raise
                    return Recovery(0, 0)  # the area went away: nothing of it to recover
                area.recovered = True
                return recovery
        except Unusable:
            if strict:
                raise
            return Recovery(0, 0)

    @contextmanager
    def readied(self) -> Iterator[Area | None]:
        """``ready``, then the area as it was checked, held open for the block: None when
        it is missing or cannot be trusted (nothing to recover there, as for ``ready``),
        or was just recovered. ``lock(area=...)`` takes it as it is, so that a batch
        checks the area once, not twice. Raises as ``ready``."""
        with ExitStack() as stack:
            try:
                area = stack.enter_context(self.area.using(create=False))
            except Unusable:
                area = None
            if area is not None and not area.recovered:
                stack.close()
                self.ready()
                area = None
            yield area

    def _recover_locked(self) -> Recovery:
        take = self._take_leftovers
        with ExitStack() as stack:
            held = self._lock_file(stack, exclusive=True)
            with self._flocked(held, exclusive=True):
                self._rename_to_own(lambda owner: owner is None)
                recovery = self.recover(purge=take is None)
                if take is not None:
                    take(self.pending())
        return recovery

    def adopt(self) -> Recovery:
        """Recover what instances that are gone left in the trash, each exactly once and
        never while it lives: for each instance whose lock nobody holds, take its lock,
        rename its trash directories as this instance's, drop its lock file, and recover
        them as this instance's own (rolling back its unfinished atomic batch under the
        exclusive workspace lock, then purging). Returns what was recovered."""
        if self.instance is None:
            return Recovery(0, 0)
        rolled_back = purged = 0
        with self.area.using(create=False) as area:
            if area is None or area.owners is None or not area.recovered:
                return Recovery(0, 0)
            names = area.trash.names()
            others = {owner_of(name) for name in names} | set(area.owners.names())
            for other in sorted(o for o in others if o is not None and o != self.instance):
                fd = hold(area.owners, other, 0)
                if fd is None:
                    continue  # alive
                try:
                    recovery = self._adopt_locked(area, other)
                finally:
                    os.close(fd)
                rolled_back += recovery.rolled_back
                purged += recovery.purged
        return Recovery(rolled_back, purged)

    def _adopt_locked(self, area: Area, other: str) -> Recovery:
        """``adopt`` of ``other``, whose lock this process holds."""
        assert area.owners is not None
        take = self._take_leftovers
        with ExitStack() as stack:
            held = self._lock_file(stack, exclusive=True)
            with self._flocked(held, exclusive=True):
                adopted = self._rename_to_own(lambda owner: owner == other)
                rolled_back = 0
                for txn_id in adopted:
                    txn = Transaction(self, txn_id)
                    if txn.state() is TxnState.OPEN:
                        txn.rollback()
                        rolled_back += 1
                with suppress(FileNotFoundError):
                    os.unlink(other, dir_fd=area.owners.fd)
        if adopted:
            log.warning(
                "staging: adopted %d trash directories of instance %r, which is gone "
                "(%d unfinished atomic batches rolled back)",
                len(adopted),
                other,
                rolled_back,
            )
        if take is not None:
            take(adopted)
        else:
            for txn_id in adopted:
                self.purge(txn_id)
        return Recovery(rolled_back, len(adopted))

    def _rename_to_own(self, whose: Callable[[str | None], bool]) -> list[str]:
        """Rename the trash directories whose owner ``whose`` accepts as this instance's
        (under the exclusive workspace lock); their new names."""
        if self.instance is None:
            return []
        renamed = []
        with self.area.using(create=False) as area:
            if area is None:
                return []
            for name in area.trash.names():
                owner = owner_of(name)
                if owner == self.instance or not whose(owner):
                    continue
                new = self._new_id(name.partition(OWNER_SEPARATOR)[2] or name)
                try:
                    rename_noreplace(area.trash.fd, name, area.trash.fd, new)
                except OSError as exc:
                    raise from_os_error(exc, "", "adopt a trash directory") from None
                renamed.append(new)
        return renamed

    def _new_id(self, unique: str) -> str:
        """The name of a trash directory of this instance."""
        return unique if self.instance is None else f"{self.instance}{OWNER_SEPARATOR}{unique}"

    @contextmanager
    def lock(self, *, exclusive: bool, area: Area | None = None) -> Iterator[None]:
        """Hold the workspace lock: shared by plain batches, exclusive for an atomic one.

        An atomic batch must see no concurrent change, and nobody may see its uncommitted
        moves (a delete answering "absent" for a target that a rollback then restores).
        flock is released by the kernel when a process dies, and works across processes.
        Each holder needs an open file of its own (flock belongs to the open file, so two
        holders sharing one would unlock each other); idle ones are kept for the next
        request rather than opened and closed every time.

        A shared lock needs no new space, nor a usable area: when the lock file is missing
        and cannot be made (read-only or full filesystem, the area removed meanwhile), or
        the area cannot be trusted, no atomic batch can hold it either, so a plain batch
        runs without it.

        ``area``, when given, is the area as the caller checked it and holds open
        (``readied``): it is taken as it is, not checked again.
        """
        if not (self.shared or exclusive):
            yield
            return
        with ExitStack() as stack:
            try:
                held = self._lock_file(stack, exclusive=exclusive, area=area)
            except Unusable as exc:
                if exclusive:
                    raise AtomicUnsupported(str(exc)) from None
                held = None
            with self._flocked(held, exclusive=exclusive):
                yield

    def _lock_file(
        self, stack: ExitStack, *, exclusive: bool, area: Area | None = None
    ) -> tuple[Area, int] | None:
        """The area (``area`` as given, else checked now and held by ``stack``) and an
        open lock file of it; None when a shared lock has to do without (see ``lock``).
        Raises ``Unusable``."""
        try:
            if area is None:
                area = stack.enter_context(self.area.using())
                assert area is not None
            fd = area.idle_lock_fds.pop() if area.idle_lock_fds else None
            if fd is None:
                fd = _open_lock(area, required=exclusive)
        except SandboxError:
            if exclusive:
                raise
            return None
        return None if fd is None else (area, fd)

    @contextmanager
    def _flocked(self, held: tuple[Area, int] | None, *, exclusive: bool) -> Iterator[None]:
        """Hold flock on ``held``'s lock file for the block (and this process's lock
        between its threads), then give the file back to its area for the next holder (or
        close it, should the block fail)."""
        if held is None:
            yield
            return
        area, fd = held
        with self._threads.held(exclusive=exclusive):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except BaseException:
                os.close(fd)
                raise
        area.idle_lock_fds.append(fd)

    def check_owned(self, area: Area) -> None:
        """Raise ``Busy`` unless this instance holds its lock in ``area``: a trash
        directory made without it could be adopted while this process lives."""
        if self.instance is not None and area.owner_fd is None:
            raise Busy("this instance's staging area cannot be locked yet (see /readyz)")

    def begin(self) -> Transaction:
        """A new transaction; its directory is made when it first stages something."""
        return Transaction(self, self._new_id(uuid.uuid4().hex))

    def pending(self) -> list[str]:
        """Ids of this instance's transactions whose directories are in the trash now."""
        with self.area.using(create=False) as area:
            if area is None:
                return []
            return [name for name in area.trash.names() if owned(name, self.instance)]

    def state(self, txn_id: str) -> TxnState:
        """Where transaction ``txn_id`` stands, from its journal."""
        return Transaction(self, txn_id).state()

    def detachment(self) -> Detachment:
        """A new trash directory for a plain delete's targets (made at the first move)."""
        return Detachment(self)

    def held(self, txn_id: str) -> int:
        """How many entries trash directory ``txn_id`` holds (its journal left out)."""
        with self.area.using(create=False) as area:
            txn_dir = None if area is None else area.trash.open_subdir(txn_id)
            if txn_dir is None:
                return 0
            with txn_dir:
                return len([name for name in txn_dir.names() if name != JOURNAL])

    def purge(self, txn_id: str, *, pace: Pace = no_pace) -> None:
        """Free trash directory ``txn_id`` and all it holds, if the trash holds it;
        ``pace`` as for ``Root.remove``. Stops (``Busy``) if the area is moved or replaced
        meanwhile: what is no longer in the root is not stepd's to remove."""
        with self.area.using(create=False) as area:
            if area is None:
                return
            ticks = 0

            def checked() -> None:
                nonlocal ticks
                pace()
                ticks += 1
                if ticks % _CHECK_EVERY == 0 and not self.area.is_current(area):
                    raise Busy("stepd's own area was moved or replaced while being purged")

            area.trash.remove(txn_id, pace=checked)

    def recover(self, *, purge: bool = True) -> Recovery:
        """Roll back every unfinished transaction, then purge every transaction directory
        (unless ``purge`` is False: the purger will)."""
        rolled_back = purged = 0
        for txn_id in self.pending():
            txn = Transaction(self, txn_id)
            if txn.state() is TxnState.OPEN:
                txn.rollback()
                rolled_back += 1
            if purge:
                txn.purge()
                purged += 1
        if purged:
            log.info("staging recovery: %d rolled back, %d purged", rolled_back, purged)
        return Recovery(rolled_back, purged)


# Smaller files (and symlinks) are unlinked in place: as fast as renaming them, and it
# spares the purger a directory to free per request.
DETACH_MIN_BYTES = 1 << 20


def worth_detaching(entry: Entry) -> bool:
    """Whether removing ``entry`` may take long enough to be left to the purger: a
    directory (any size: only a walk would tell), or a file of ``DETACH_MIN_BYTES``."""
    return entry.size is None or entry.size >= DETACH_MIN_BYTES


class Detachment:
    """A plain delete's trash directory, without a journal (see the module doc).

    ``moved`` entries are in it, of ``size`` bytes (None once a directory is among them);
    ``created`` says whether it exists, that is whether it must be purged.
    """

    def __init__(self, staging: Staging) -> None:
        self.staging = staging
        self.txn_id = ""  # named when made: a delete of absent targets needs none
        self.created = False
        self.moved = 0
        self.size: int | None = 0
        self._dir: Root | None = None
        self._area: Area | None = None

    def detach(self, workspace_root: Root, entries: Sequence[Entry]) -> list[Entry]:
        """Move ``entries`` (looked up in ``workspace_root``) into the trash directory; one
        already gone is fine.

        Returns those left where they are because the trash cannot take them: it is on
        another filesystem, it cannot be made or grown (the filesystem is full or
        read-only), the area cannot be trusted, or it was moved, replaced or removed since
        this directory was made. The caller removes them in place.
        """
        if not entries:
            return []
        try:
            with self.staging.area.using() as area:
                assert area is not None
                if self._dir is None:
                    self._make(area)
                current = area is self._area
        except (Unusable, SandboxError) as exc:
            log.warning("deleting in place: the trash cannot be used: %s", exc)
            return list(entries)
        if not current:
            return list(entries)  # our directory is no longer the root's
        return self._move(workspace_root, entries)

    def _make(self, area: Area) -> None:
        self.staging.check_owned(area)
        txn_id = self.staging._new_id(uuid.uuid4().hex)
        self._dir = area.trash.open_subdir(txn_id, create=True)
        if self._dir is None:
            raise Busy("the trash directory was removed as it was made")
        self._area = area
        self.txn_id = txn_id
        self.created = True

    def _move(self, workspace_root: Root, entries: Sequence[Entry]) -> list[Entry]:
        assert self._dir is not None
        for index, entry in enumerate(entries):
            try:
                moved = workspace_root.move_out(entry.real_path, self._dir, str(self.moved))
            except (CrossDevice, NoSpace, ReadOnlyFilesystem):
                return list(entries[index:])
            except FilesystemError as exc:
                if exc.errno == errno.ENOENT and not exc.path:
                    return list(entries[index:])  # our directory was removed
                raise
            if moved:
                self.moved += 1
                if self.size is not None:
                    self.size = None if entry.size is None else self.size + entry.size
        return []

    def close(self) -> None:
        """Close its directory (kept open from the first move on, for the next steps)."""
        if self._dir is not None:
            self._dir.close()


class Transaction:
    """Entries moved aside together, to be committed (then purged) or put back.

    Its directory belongs to the opening of the area it was made in: should the area be
    moved or replaced meanwhile, staging and committing fail (``Busy``) and a rollback
    cannot bring back what went with it (``rollback`` returns False).
    """

    def __init__(self, staging: Staging, txn_id: str) -> None:
        self.staging = staging
        self.id = txn_id
        self.created = False  # whether this object made its directory (to be purged)
        self._next = 0
        self._area: Area | None = None

    def stage(
        self,
        workspace_root: Root,
        workspace: str | None,
        entries: Sequence[Entry],
        done: list[Entry],
    ) -> None:
        """Move ``entries`` (looked up in ``workspace_root``, named ``workspace``) aside,
        appending each to ``done`` once moved (or found gone).

        The moves are journaled and synced first. Raises ``AtomicUnsupported`` when the
        staging area cannot take them (another filesystem, an area stepd cannot trust),
        and the sandbox's errors otherwise; what was moved before the error stays
        journaled, for ``rollback``.
        """
        if not entries:
            return
        moves = [
            Move(self._next + i, workspace, entry.real_path, entry.parent_times)
            for i, entry in enumerate(entries)
        ]
        self._next += len(moves)
        with self._directory(create=True) as txn_dir:
            assert txn_dir is not None
            self._append(txn_dir, {"stage": [move.record() for move in moves]})
            for move, entry in zip(moves, entries, strict=True):
                try:
                    workspace_root.move_out(move.path, txn_dir, str(move.n))
                except CrossDevice:
                    raise AtomicUnsupported(
                        f"cannot move {move.path!r} aside: the staging area is on another "
                        "filesystem"
                    ) from None
                except FilesystemError as exc:
                    if exc.errno == errno.ENOENT and not exc.path:
                        raise Busy("stepd's staging area was removed during the batch") from None
                    raise
                done.append(entry)

    def commit(self) -> None:
        """Make the moves final: from now on the staged entries are only garbage."""
        self._end(TxnState.COMMITTED)

    def rollback(self) -> bool:
        """Put every staged entry back where it was, latest first, then record the abort;
        False when its directory is no longer reachable (the area was moved, replaced or
        removed), so that what it held cannot come back.

        An entry whose place is taken, or whose parent is gone, stays for the purge: a
        later change superseded it (as if this transaction had never run).
        """
        with self._directory(create=False) as txn_dir:
            if txn_dir is None:
                return not self.created
            moves = [move for record in _read(txn_dir) for move in _moves(record)]
            for move in reversed(moves):
                if txn_dir.lookup(str(move.n)) is None:
                    continue  # journaled, but the process died before moving it
                if not self._put_back(txn_dir, move):
                    log.warning(
                        "staging %s: cannot restore %r in workspace %r: superseded; purging it",
                        self.id,
                        move.path,
                        move.workspace,
                    )
            try:
                self._append(txn_dir, {"end": TxnState.ABORTED.value})
            except NoSpace:
                # Everything that could go back is back; the purge follows. Should the
                # process die first, recovery finds nothing more to put back.
                log.warning("staging %s: no space to journal the rollback's end", self.id)
        return True

    def purge(self, *, pace: Pace = no_pace) -> None:
        """Free the transaction's directory and everything still in it; ``pace`` as for
        ``Root.remove``."""
        self.staging.purge(self.id, pace=pace)

    def state(self) -> TxnState:
        """Open, committed or aborted, from the journal's end record."""
        with self._directory(create=False) as txn_dir:
            if txn_dir is None or txn_dir.lookup(JOURNAL) is None:
                return TxnState.ABORTED
            for record in _read(txn_dir):
                if "end" in record:
                    return TxnState(record["end"])
        return TxnState.OPEN

    def _put_back(self, txn_dir: Root, move: Move) -> bool:
        root = self.staging.root
        if move.workspace is None:
            return root.move_in(txn_dir, str(move.n), move.path, move.parent_times)
        workspace = root.open_subdir(move.workspace)
        if workspace is None:
            return False
        with workspace:
            return workspace.move_in(txn_dir, str(move.n), move.path, move.parent_times)

    def _end(self, state: TxnState) -> None:
        with self._directory(create=False) as txn_dir:
            if txn_dir is not None:
                self._append(txn_dir, {"end": state.value})
            elif self.created:
                raise Busy("stepd's staging area was moved, replaced or removed during the batch")

    @contextmanager
    def _directory(self, *, create: bool) -> Iterator[Root | None]:
        """The transaction's directory in the area it belongs to; None when it does not
        exist (nor is ``create``d) or is no longer reachable."""
        with ExitStack() as stack:
            yield self._open(stack, create)

    def _open(self, stack: ExitStack, create: bool) -> Root | None:
        try:
            area = stack.enter_context(self.staging.area.using(create=create))
        except Unusable as exc:
            if create:
                raise AtomicUnsupported(str(exc)) from None
            return None  # an area stepd cannot trust holds nothing of its own
        except FilesystemError as exc:
            raise anonymous(exc, "open the staging area") from None
        if area is None or (self._area is not None and area is not self._area):
            if create and area is not None:
                raise Busy("stepd's staging area was moved or replaced during the batch")
            return None
        try:
            txn_dir = area.trash.open_subdir(self.id)
            if txn_dir is not None or not create:
                return None if txn_dir is None else stack.enter_context(txn_dir)
            self.staging.check_owned(area)
            txn_dir = area.trash.open_subdir(self.id, create=True)
            if txn_dir is None:
                raise Busy("the staging directory was removed as it was made")
            stack.enter_context(txn_dir)
            self._area = area
            self.created = True
            # The journal must be findable after a crash: sync its name, and the dir's.
            _create_journal(txn_dir)
            txn_dir.sync()
            area.trash.sync()
            return txn_dir
        except FilesystemError as exc:
            raise anonymous(exc, "make the staging directory") from None
        except OutsideRoot as exc:
            raise AtomicUnsupported(
                f"the staging area holds something not its own: {exc.message}"
            ) from None

    @staticmethod
    def _append(txn_dir: Root, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        try:
            fd = txn_dir.open_file(JOURNAL, os.O_WRONLY | os.O_APPEND)
            try:
                end = os.lseek(fd, 0, os.SEEK_END)
                try:
                    if os.write(fd, line) != len(line):
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    os.fsync(fd)
                except OSError:
                    # A torn record would swallow the next one: cut it off (no space needed).
                    with suppress(OSError):
                        os.ftruncate(fd, end)
                    raise
            finally:
                os.close(fd)
        except OSError as exc:
            raise from_os_error(exc, "", "write the staging journal") from None
        except FilesystemError as exc:
            raise anonymous(exc, "write the staging journal") from None


def _create_journal(txn_dir: Root) -> None:
    fd = txn_dir.open_file(JOURNAL, os.O_WRONLY | os.O_CREAT)
    try:
        os.fsync(fd)
    except OSError as exc:
        raise from_os_error(exc, "", "create the staging journal") from None
    finally:
        os.close(fd)


class _SharedLock:
    """A readers-writer lock between the threads of this process. flock excludes open
    files from one another on a local filesystem, but NFS turns it into a POSIX lock,
    which a process never conflicts with itself on: this lock keeps the threads of one
    process apart there too."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def held(self, *, exclusive: bool) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(
                lambda: not self._writer and (not exclusive or self._readers == 0)
            )
            if exclusive:
                self._writer = True
            else:
                self._readers += 1
        try:
            yield
        finally:
            with self._changed:
                if exclusive:
                    self._writer = False
                else:
                    self._readers -= 1
                self._changed.notify_all()


def _open_lock(area: Area, *, required: bool) -> int | None:
    """The area's lock file, opened (made first if missing); None when it cannot be made
    (read-only or full filesystem) and is not ``required``."""
    try:
        # Read-only is enough for flock, and kept open it would block a remount ro.
        return area.directory.open_file(LOCK, os.O_RDONLY | os.O_CREAT)
    except (ReadOnlyFilesystem, NoSpace) as exc:
        error: SandboxError = exc
    except OutsideRoot as exc:
        raise Unusable(f"'.stepd/{LOCK}': {exc.message}") from None
    if isinstance(error, ReadOnlyFilesystem):
        # flock needs no write access; an existing file can still be locked.
        with suppress(FileNotFoundError):
            try:
                return area.directory.open_file(LOCK, os.O_RDONLY)
            except FilesystemError as exc:
                if exc.errno != errno.ENOENT:
                    raise
    if required:
        raise error
    return None


def _read(txn_dir: Root) -> Iterator[dict[str, Any]]:
    """The journal's records; a torn last line (the process died writing it) is dropped."""
    try:
        fd = txn_dir.open_file(JOURNAL, os.O_RDONLY)
    except FilesystemError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise anonymous(exc, "read the staging journal") from None
    with os.fdopen(fd, "rb") as journal:
        for line in journal:
            try:
                record = json.loads(line)
            except ValueError:
                return
            if isinstance(record, dict):
                yield record


def _moves(record: dict[str, Any]) -> list[Move]:
    return [Move.parse(item) for item in record.get("stage", ())]
