from vpolib.tags import parse_tags


def names(parsed):
    return [(t.name, t.value, t.kind) for t in parsed.tags]


def test_pika_tags_at_end():
    p = parse_tags("rotating view, in the middle of laughing cows -ar 16:9 -motion 2")
    assert p.content == "rotating view, in the middle of laughing cows"
    assert names(p) == [("ar", "16:9", "format"), ("motion", "2", "content")]
    assert p.warnings == []


def test_neg_and_camera_are_content_and_negatives_split_on_commas():
    p = parse_tags("map of France -camera zoom in -neg morphing, erratic fonts")
    assert names(p) == [("camera", "zoom in", "content"), ("neg", "morphing, erratic fonts", "content")]
    assert p.negatives() == ["morphing", "erratic fonts"]
    assert p.content == "map of France"


def test_hyphenated_words_are_not_tags():
    q = "sci-fi style moon fly-by, a cartoon-style close-up of a well-known face"
    p = parse_tags(q)
    assert p.tags == [] and p.content == q


def test_glued_tag_needs_a_valid_value():
    p = parse_tags("kids facing challenges-ar 16:9 --style raw")
    assert p.content == "kids facing challenges"
    assert names(p) == [("ar", "16:9", "format"), ("style", "raw", "format")]
    # 'free-style' glued without a value is a word, not the -style tag
    assert parse_tags("free-style dance").tags == []


def test_value_without_space_and_double_dash():
    p = parse_tags("snow -gs24 --motion 4 --ar 9 : 16")
    assert names(p) == [("gs", "24", "format"), ("motion", "4", "content"), ("ar", "9:16", "format")]


def test_dangling_and_malformed_tags_warn():
    p = parse_tags("a cat -neg")
    assert p.content == "a cat"
    assert names(p) == [("neg", None, "content")]
    assert p.warnings == ["dangling -neg"]
    p = parse_tags("a dog -ar wide")
    assert ("ar", None, "format") in names(p)
    assert "-ar without a valid value" in p.warnings


def test_tags_only_query_has_empty_content():
    p = parse_tags("-ar 16:9 -gs 20 -seed 7")
    assert p.content == ""
    assert [t.name for t in p.tags] == ["ar", "gs", "seed"]


def test_unicode_dash_and_text_survive():
    p = parse_tags("café au lait, ✨ étoiles –neg blur")
    assert p.content == "café au lait, ✨ étoiles"
    assert names(p) == [("neg", "blur", "content")]


def test_repeated_tag_warns():
    p = parse_tags("a mountain -camera zoom in --camera rotate cw")
    assert [t.value for t in p.tags] == ["zoom in", "rotate cw"]
    assert p.warnings == ["-camera given more than once"]


def test_repeated_and_quoted_negatives_add_up():
    p = parse_tags('streets of the 1970s -neg "humans" -neg cgi, fake')
    assert p.negatives() == ["humans", "cgi", "fake"]
    assert p.warnings == []


def test_tag_dicts_are_serialisable():
    p = parse_tags("x -neg y")
    assert p.tag_dicts() == [{"name": "neg", "value": "y", "kind": "content"}]
