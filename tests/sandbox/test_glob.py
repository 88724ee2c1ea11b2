"""``Root.glob``: doublestar patterns, as Kargo's delete step uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.sandbox import Root
from app.sandbox.errors import InvalidPath, InvalidPattern, OutsideRoot
from app.steps.workspace import RESERVED_NAME
from tests.support.mounts import bind_mount, skip_if_not_permitted

TREE = [
    "a.txt",
    "b.txt",
    "ab.yaml",
    ".hidden",
    "c1",
    "c2",
    "cx",
    "charts/x/values-dev.yaml",
    "charts/y/values-dev.yaml",
    "charts/y/values-prod.yaml",
    "charts/y/.values-dev.yaml",
    "tmp/deep/er/f.log",
    "tmp/a.txt",
]


@pytest.fixture(autouse=True)
def tree(root_dir: Path) -> None:
    for name in TREE:
        (root_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (root_dir / name).write_text(name)
    (root_dir / RESERVED_NAME / "state").mkdir(parents=True)


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("*.txt", ["a.txt", "b.txt"]),
        (".*", [".hidden"]),
        ("*hidden", [".hidden"]),
        ("c?", ["c1", "c2", "cx"]),
        ("??.yaml", ["ab.yaml"]),
        ("c[1-2]", ["c1", "c2"]),
        ("c[a-z]", ["cx"]),
        ("c[!1]", ["c2", "cx"]),
        ("c[^1x]", ["c2"]),
        ("c[12x]", ["c1", "c2", "cx"]),
        ("{a,b}.txt", ["a.txt", "b.txt"]),
        ("{a{b.yaml,.txt},c1}", ["a.txt", "ab.yaml", "c1"]),
        ("{charts/x,tmp/deep}/*", ["charts/x/values-dev.yaml", "tmp/deep/er"]),
        ("charts/*/values-dev.yaml", ["charts/x/values-dev.yaml", "charts/y/values-dev.yaml"]),
        (
            "charts/y/*",
            ["charts/y/.values-dev.yaml", "charts/y/values-dev.yaml", "charts/y/values-prod.yaml"],
        ),
        ("**/values-dev.yaml", ["charts/x/values-dev.yaml", "charts/y/values-dev.yaml"]),
        ("**/f.log", ["tmp/deep/er/f.log"]),
        ("**/a.txt", ["a.txt", "tmp/a.txt"]),
        ("tmp/**/f.log", ["tmp/deep/er/f.log"]),
        ("charts/**/*-prod.yaml", ["charts/y/values-prod.yaml"]),
        ("*.yaml", ["ab.yaml"]),
        ("./a.txt", ["a.txt"]),
        ("tmp/../a.txt", ["a.txt"]),
        ("a.txt/", ["a.txt"]),
        ("nothing*", []),
        ("c[0]", []),
    ],
)
def test_doublestar_semantics(root: Root, pattern: str, matches: list[str]) -> None:
    assert root.glob(pattern) == matches


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("**", [".hidden", "a.txt", "ab.yaml", "b.txt", "c1", "c2", "charts", "cx", "tmp"]),
        ("**/*", [".hidden", "a.txt", "ab.yaml", "b.txt", "c1", "c2", "charts", "cx", "tmp"]),
        ("{charts,charts/x}", ["charts"]),
        ("charts/{*,x/*}", ["charts/x", "charts/y"]),
        (
            "**/values-*",
            ["charts/x/values-dev.yaml", "charts/y/values-dev.yaml", "charts/y/values-prod.yaml"],
        ),
        ("{tmp,tmp/**/*.log}", ["tmp"]),
    ],
)
def test_only_top_most_matches_are_returned(root: Root, pattern: str, matches: list[str]) -> None:
    assert root.glob(pattern) == matches


class TestEscapes:
    @pytest.fixture(autouse=True)
    def _odd_names(self, root_dir: Path) -> None:
        for name in ("a*b", "axb", "[x]", "x", "{a,b}", "a", "q?", "qq", "back\\slash"):
            (root_dir / name).write_text(name)

    @pytest.mark.parametrize(
        ("pattern", "matches"),
        [
            ("a\\*b", ["a*b"]),
            ("a*b", ["a*b", "axb"]),
            ("\\[x]", ["[x]"]),
            ("\\[x\\]", ["[x]"]),
            ("[x]", ["x"]),
            ("\\{a,b}", ["{a,b}"]),
            ("q\\?", ["q?"]),
            ("back\\\\slash", ["back\\slash"]),
            ("[\\]x]", ["x"]),
        ],
    )
    def test_a_backslash_makes_the_next_character_literal(
        self, root: Root, pattern: str, matches: list[str]
    ) -> None:
        assert root.glob(pattern) == matches


@pytest.mark.parametrize(
    "pattern",
    ["[abc", "c[1-", "a/[b/c", "{a,b", "{a,{b,c}", "a\\", "dir/a\\", "[]", "[\\"],
)
def test_invalid_patterns_are_rejected(root: Root, pattern: str) -> None:
    with pytest.raises(InvalidPattern):
        root.glob(pattern)


@pytest.mark.parametrize("pattern", ["/*", "/etc/**", "{a.txt,/etc/passwd}"])
def test_absolute_patterns_are_invalid(root: Root, pattern: str) -> None:
    with pytest.raises(InvalidPath):
        root.glob(pattern)


@pytest.mark.parametrize("pattern", ["../*", "../outside/**", "{a.txt,../*}", "tmp/../../*"])
def test_patterns_climbing_out_are_outside(root: Root, pattern: str) -> None:
    with pytest.raises(OutsideRoot):
        root.glob(pattern)


class TestSymlinks:
    @pytest.fixture(autouse=True)
    def _links(self, root_dir: Path) -> None:
        (root_dir / "to-charts").symlink_to("charts")
        (root_dir / "to-outside").symlink_to("../outside")
        (root_dir / "to-outside-abs").symlink_to(root_dir.parent / "outside")
        (root_dir / "charts" / "x" / "up").symlink_to("../..")
        (root_dir / "dangling").symlink_to("nowhere")

    def test_a_symlink_is_matched_as_a_link(self, root: Root) -> None:
        assert root.glob("to-*") == ["to-charts", "to-outside", "to-outside-abs"]
        assert root.glob("dang*") == ["dangling"]
        assert root.glob("charts/x/up") == ["charts/x/up"]

    @pytest.mark.parametrize(
        "pattern",
        ["to-charts/*", "to-charts/**/*.yaml", "to-outside/*", "to-outside-abs/**", "*/*.txt"],
    )
    def test_a_symlink_is_never_traversed(self, root: Root, pattern: str) -> None:
        assert not any(match.startswith(("to-", "charts/x/up/")) for match in root.glob(pattern)), (
            root.glob(pattern)
        )

    def test_globstar_does_not_descend_into_symlinks(self, root: Root) -> None:
        assert root.glob("**/precious.txt") == []
        assert root.glob("**/values-dev.yaml") == [
            "charts/x/values-dev.yaml",
            "charts/y/values-dev.yaml",
        ]
        assert root.glob("**/up") == ["charts/x/up"]


class TestReservedName:
    @pytest.mark.parametrize(
        "pattern",
        [".stepd", ".stepd/*", ".*", ".step?", ".stepd/**", "{.stepd,x}", "**/.stepd", "**/state"],
    )
    def test_the_reserved_name_is_never_matched(self, root: Root, pattern: str) -> None:
        assert not any(match.startswith(".stepd") for match in root.glob(pattern))

    def test_nor_through_a_symlink_to_the_root(self, root: Root, root_dir: Path) -> None:
        (root_dir / "l").symlink_to(".")
        assert root.glob("l/.stepd") == []
        assert root.glob("l/*") == []

    def test_globstar_leaves_it_out(self, root: Root) -> None:
        assert RESERVED_NAME not in root.glob("**")
        assert RESERVED_NAME not in root.glob("*")


class TestMountPoints:
    @pytest.fixture
    def mount_point(self, root_dir: Path) -> Path:
        source = root_dir.parent / "outside" / "mounted"
        source.mkdir()
        (source / "data.txt").write_text("mounted")
        (root_dir / "m").mkdir()
        return root_dir / "m"

    def test_a_mount_point_is_never_entered(
        self, root: Root, root_dir: Path, mount_point: Path
    ) -> None:
        with (
            skip_if_not_permitted(),
            bind_mount(root_dir.parent / "outside" / "mounted", mount_point),
        ):
            assert root.glob("m/*") == []
            assert root.glob("**/data.txt") == []
            assert root.glob("*/data.txt") == []
            assert root.glob("m") == ["m"]
        assert (root_dir.parent / "outside" / "mounted" / "data.txt").exists()
