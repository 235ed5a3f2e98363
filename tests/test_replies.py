import pytest

from dispatch.replies import Reply, ReplyKind, classify_reply, normalize_reply

ACCEPT = ReplyKind.ACCEPT
PASS = ReplyKind.PASS_
OTHER = ReplyKind.OTHER

# Replies to an offer that asked "Reply 1 to accept, 2 to pass."
FIELD_REPLIES = [
    ("YES", ACCEPT),
    (" yes ", ACCEPT),
    ("Yes.", ACCEPT),
    ("yes!!", ACCEPT),
    ("Y", ACCEPT),
    ("y\n", ACCEPT),
    ("Yes\nSent from my iPhone", ACCEPT),
    ("\uff39\uff25\uff33", ACCEPT),  # full-width YES
    ("Ok", ACCEPT),
    ("OK\N{THUMBS UP SIGN}", ACCEPT),
    ("1", ACCEPT),
    ("\N{THUMBS UP SIGN}", ACCEPT),
    ("\N{THUMBS UP SIGN}\N{EMOJI MODIFIER FITZPATRICK TYPE-4}", ACCEPT),
    ("\N{THUMBS UP SIGN}\ufe0f", ACCEPT),
    ("Yes, on my way", ACCEPT),
    ("No", PASS),
    ("no.", PASS),
    ("2", PASS),
    ("No, I\u2019m ill ", PASS),
    ("yesterday was my day off", OTHER),
    ("sorry busy", OTHER),
    ("y not call B", OTHER),
    ("who is this?", OTHER),
]

KEYWORD_REPLIES = [
    ("STOP", ReplyKind.OPT_OUT),
    ("Stop.", ReplyKind.OPT_OUT),
    (" stopall ", ReplyKind.OPT_OUT),
    ("Unsubscribe", ReplyKind.OPT_OUT),
    ("cancel", ReplyKind.OPT_OUT),
    ("END", ReplyKind.OPT_OUT),
    ("quit", ReplyKind.OPT_OUT),
    ("REVOKE", ReplyKind.OPT_OUT),
    ("optout", ReplyKind.OPT_OUT),
    ("\uff33\uff34\uff2f\uff30", ReplyKind.OPT_OUT),  # full-width STOP
    ("START", ReplyKind.OPT_IN),
    ("unstop", ReplyKind.OPT_IN),
    ("HELP", ReplyKind.HELP),
    ("info", ReplyKind.HELP),
    ("stop please", OTHER),
    ("please stop", OTHER),
    ("STOP STOP", OTHER),
    ("stopping by later", OTHER),
    ("help me", OTHER),
]

CODED_REPLIES = [
    ("1 4821", ACCEPT, "4821"),
    ("4821 1", ACCEPT, "4821"),
    ("yes 4821", ACCEPT, "4821"),
    ("4821 yes", ACCEPT, "4821"),
    ("OK 4821", ACCEPT, "4821"),
    ("on it 4821", ACCEPT, "4821"),
    ("4821, yes!", ACCEPT, "4821"),
    ("#4821 Y", ACCEPT, "4821"),
    ("2 4821", PASS, "4821"),
    ("4821 no", PASS, "4821"),
    ("pass 0421", PASS, "0421"),
    ("4821", ReplyKind.CODE_ONLY, "4821"),
    ("4821.", ReplyKind.CODE_ONLY, "4821"),
    ("4821?", ReplyKind.CODE_ONLY, "4821"),
    ("\uff14\uff18\uff12\uff11 \uff11", ACCEPT, "4821"),  # full-width digits
]

UNCODED_REPLIES = [
    "yes 4821?",
    "yes 48211",
    "yes 482",
    "1 4821 2",
    "4821 4821",
    "4821 maybe",
    "yes no 4821",
    "4821 yes please",
]

ADVERSARIAL_REPLIES = [
    ("y.", ACCEPT),
    ("NO!!!", PASS),
    ("Yes?", OTHER),
    ("ok?", OTHER),
    ("1?", OTHER),
    ("no?", OTHER),
    ("Yes?!", OTHER),
    ("ok? who is this", OTHER),
    ("yes yes", ACCEPT),
    ("ok, yes \N{THUMBS UP SIGN}", ACCEPT),
    ("on it", ACCEPT),
    ("On it!", ACCEPT),
    ("On it, leaving now", ACCEPT),
    ("yep", ACCEPT),
    ("Yeah.", ACCEPT),
    ("okay", ACCEPT),
    ("k", ACCEPT),
    ("Accept", ACCEPT),
    ('"yes"', ACCEPT),
    ("Yes , on my way", ACCEPT),
    ("Yes - on my way", ACCEPT),
    ("Okay.\nBe there in 20", ACCEPT),
    ("1\nSent from my iPhone", ACCEPT),
    ("Y\r\nSent from my phone", ACCEPT),
    ("\N{THUMBS UP SIGN}\N{EMOJI MODIFIER FITZPATRICK TYPE-6}\ufe0f", ACCEPT),
    ("\u200byes", ACCEPT),
    ("No. I'm sick", PASS),
    ("nope", PASS),
    ("Pass", PASS),
    ("decline", PASS),
    ("No \u2014 car trouble", PASS),
    ("2\n--\nBob", PASS),
    ("no problem", OTHER),
    ("no-one else can?", OTHER),
    ("Nope I'm out", OTHER),
    ("ok-ish", OTHER),
    ("yes no", OTHER),
    ("1 2", OTHER),
    ("11", OTHER),
    ("12", OTHER),
    ("y, not call B", OTHER),
    ("yess", OTHER),
    ("okey dokey", OTHER),
    ("Yes I will", OTHER),
    ("Sent from my iPhone\nYes", OTHER),
    ("\N{THUMBS DOWN SIGN}", OTHER),
    ("", OTHER),
    ("   \n ", OTHER),
    ("...", OTHER),
]

REACTIONS = [
    "Liked \u201cDispatch 4821: leak at 12 Main St. Reply 1 to accept, 2 to pass.\u201d",
    'Laughed at "Reply 1 to accept, 2 to pass."',
    "Loved \u201cyes\u201d",
    'Emphasized "1"',
    'Questioned "Reply 1 to accept"',
    'Disliked "Reply 1 to accept, 2 to pass."',
    'Disliked "no"',
    "I'm driving with Do Not Disturb on. I'll see your message when I get where I'm going.",
    "I'm Driving - Sent from My Car",
]


@pytest.mark.parametrize(("body", "expected"), FIELD_REPLIES)
def test_field_replies(body: str, expected: ReplyKind) -> None:
    reply = classify_reply(body)

    assert reply.kind == expected
    assert reply.code is None


@pytest.mark.parametrize(("body", "expected"), KEYWORD_REPLIES)
def test_keyword_replies(body: str, expected: ReplyKind) -> None:
    assert classify_reply(body).kind == expected


@pytest.mark.parametrize(("body", "expected", "code"), CODED_REPLIES)
def test_reply_with_dispatch_code(body: str, expected: ReplyKind, code: str) -> None:
    reply = classify_reply(body)

    assert reply.kind == expected
    assert reply.code == code


@pytest.mark.parametrize("body", UNCODED_REPLIES)
def test_malformed_code_reply_is_other(body: str) -> None:
    reply = classify_reply(body)

    assert reply.kind == OTHER
    assert reply.code is None


@pytest.mark.parametrize(("body", "expected"), ADVERSARIAL_REPLIES)
def test_adversarial_replies(body: str, expected: ReplyKind) -> None:
    assert classify_reply(body).kind == expected


@pytest.mark.parametrize("body", REACTIONS)
def test_reactions_and_autoreplies_are_other(body: str) -> None:
    assert classify_reply(body).kind == OTHER


@pytest.mark.parametrize(
    ("opt_out_type", "body", "expected"),
    [
        ("STOP", "STOP", ReplyKind.OPT_OUT),
        ("STOP", "arret", ReplyKind.OPT_OUT),
        ("stop", "1", ReplyKind.OPT_OUT),
        ("START", "yes", ReplyKind.OPT_IN),
        ("HELP", "?", ReplyKind.HELP),
        ("", "yes", ACCEPT),
        ("UNKNOWN", "yes", ACCEPT),
    ],
)
def test_opt_out_type_field(opt_out_type: str, body: str, expected: ReplyKind) -> None:
    assert classify_reply(body, opt_out_type=opt_out_type).kind == expected


def test_photo_without_text_is_other() -> None:
    reply = classify_reply("", num_media=1)

    assert reply.kind == OTHER
    assert reply.normalized == ""


def test_photo_with_yes_accepts() -> None:
    assert classify_reply("yes", num_media=1).kind == ACCEPT


def test_reply_keeps_raw_and_normalized() -> None:
    raw = "  Yes,\r\n  on   my WAY!! "

    reply = classify_reply(raw)

    assert reply == Reply(kind=ACCEPT, code=None, normalized="yes,\non my way", raw=raw)


def test_reply_is_frozen() -> None:
    reply = classify_reply("yes")

    with pytest.raises(AttributeError):
        reply.kind = OTHER  # type: ignore[misc]


def test_pass_kind_value() -> None:
    assert ReplyKind.PASS_.value == "pass"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("\uff39\uff25\uff33", "yes"),
        (" Yes.\n", "yes"),
        ("yes!!", "yes"),
        ("No, I\u2019m ill ", "no, i'm ill"),
        ("Loved \u201cyes\u201d", 'loved "yes'),
        ("\N{THUMBS UP SIGN}\N{EMOJI MODIFIER FITZPATRICK TYPE-4}\ufe0f", "\N{THUMBS UP SIGN}"),
        ("Yes\r\n\r\nSent  from my iPhone\n", "yes\nsent from my iphone"),
        ("a\u2028b\u2029c", "a\nb\nc"),
        ("STRASSE", "strasse"),
        ("Stra\u00dfe", "strasse"),
        ("\u00bd", "1\u20442"),
        ("  ", ""),
    ],
)
def test_normalize_reply(body: str, expected: str) -> None:
    assert normalize_reply(body) == expected
