"""Release dates of the distributions (portside.codenames): complete, ordered, current.

``test_the_next_release_is_listed`` reads today's date: it fails on the day a listed
release is out and the one after it is not in the table yet, so that whoever runs the
suite adds it (with its date) before users of the newest release miss their update.
"""

from __future__ import annotations

import datetime as dt

import pytest

from portside import codenames


def _next_ubuntu(release: tuple[int, ...]) -> tuple[int, int]:
    year, month = release[0], release[1]
    return (year, 10) if month == 4 else (year + 1, 4)


def test_the_next_release_is_listed() -> None:
    today = dt.date.today().isoformat()
    newest = max(codenames.UBUNTU_RELEASED)
    date = codenames.UBUNTU_RELEASED[newest]
    following = _next_ubuntu(newest)
    assert date > today, (
        f"Ubuntu {newest[0]}.{newest[1]:02d} came out on {date}: add "
        f"{following[0]}.{following[1]:02d} with its date (and its codename when known) to "
        "portside/codenames.py"
    )
    debian = list(codenames.DEBIAN)
    newest_debian = max(codenames.DEBIAN_RELEASED, key=debian.index)
    assert debian.index(newest_debian) + 1 < len(debian), (
        f"Debian {newest_debian} is out: add the next codename to portside/codenames.py"
    )


def test_every_codename_with_a_date_and_dates_in_release_order() -> None:
    assert set(codenames.DEBIAN_RELEASED) <= set(codenames.DEBIAN)
    debian_dates = [
        codenames.DEBIAN_RELEASED[c] for c in codenames.DEBIAN if c in codenames.DEBIAN_RELEASED
    ]
    assert debian_dates == sorted(debian_dates)
    # Every Ubuntu codename names a release with a date; dates follow release numbers.
    assert all(release in codenames.UBUNTU_RELEASED for release in codenames.UBUNTU.values())
    ubuntu = sorted(codenames.UBUNTU_RELEASED)
    assert [codenames.UBUNTU_RELEASED[r] for r in ubuntu] == sorted(
        codenames.UBUNTU_RELEASED.values()
    )
    for date in [*debian_dates, *codenames.UBUNTU_RELEASED.values()]:
        dt.date.fromisoformat(date)


@pytest.mark.parametrize(
    ("release", "lts"),
    [((22, 4), True), ((24, 4), True), ((24, 10), False), ((25, 4), False), ((26, 4), True)],
)
def test_lts(release: tuple[int, int], lts: bool) -> None:
    assert codenames.ubuntu_is_lts(release) is lts


def test_released_on_a_date() -> None:
    assert not codenames.ubuntu_released((24, 4), on="2024-04-24")
    assert codenames.ubuntu_released((24, 4), on="2024-04-25")
    assert not codenames.debian_released("trixie", on="2025-08-08")
    assert codenames.debian_released("trixie", on="2025-08-09")
    assert not codenames.debian_released("forky", on="2099-01-01")  # no date: not out


def test_variant_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codenames, "today", lambda: "2025-06-01")
    assert not codenames.variant_offered("slim-bookworm", "slim-trixie")  # trixie: August
    assert codenames.variant_offered("jdk-jammy", "jdk-noble")
    assert not codenames.variant_offered("jdk-noble", "jdk-plucky")  # LTS to interim
    assert codenames.variant_offered("jdk-oracular", "jdk-plucky")  # interim to interim
    monkeypatch.setattr(codenames, "today", lambda: "2025-08-09")
    assert codenames.variant_offered("slim-bookworm", "slim-trixie")
