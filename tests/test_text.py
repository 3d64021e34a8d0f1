from netsight.text import ordinal, plural


def test_plural_and_ordinal():
    assert plural(1, "seed") == "1 seed" and plural(2, "seed") == "2 seeds" and plural(1000, "image") == "1,000 images"
    assert plural(2, "process", "processes") == "2 processes"
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "101st",
        "111th",
    ]
