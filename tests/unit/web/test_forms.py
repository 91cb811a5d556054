"""The predict form generated from a model's preprocessing spec."""

from __future__ import annotations

from serving.web import forms

SPEC = {
    "numeric": [
        {"name": "age", "dtype": "long", "median": 40.5, "min": 18.2, "max": 79.6},
        {"name": "income", "dtype": "double", "median": 48000.25, "min": 1000.0, "max": 2e5},
        {
            "name": "ratio",
            "dtype": "double",
            "median": 5.0,
            "min": 0.0,
            "max": 1.0,
            "allow_missing": False,
        },
    ],
    "categorical": [
        {"name": "home", "categories": ["MORTGAGE", "OWN", "RENT"]},
        {"name": "purpose", "categories": ["car"], "allow_missing": False},
    ],
}


def test_every_spec_column_becomes_one_field_in_order():
    fields = forms.fields_from_spec(SPEC)
    assert [f.name for f in fields] == ["age", "income", "ratio", "home", "purpose"]
    assert [f.widget for f in fields] == ["number", "number", "number", "select", "select"]


def test_integer_columns_step_by_one_with_whole_bounds_and_default():
    age = forms.fields_from_spec(SPEC)[0]
    assert (age.min, age.max, age.step, age.default) == ("18", "80", "1", "40")
    assert age.integer and not age.required


def test_real_columns_take_any_step_and_the_median_as_default():
    income = forms.fields_from_spec(SPEC)[1]
    assert (income.min, income.max, income.step, income.default) == (
        "1000",
        "200000",
        "any",
        "48000.25",
    )


def test_the_default_is_clamped_into_the_range_and_required_follows_allow_missing():
    ratio = forms.fields_from_spec(SPEC)[2]
    assert ratio.default == "1" and ratio.required


def test_selects_offer_the_training_categories():
    home, purpose = forms.fields_from_spec(SPEC)[3:]
    assert home.options == ("MORTGAGE", "OWN", "RENT") and home.default == "MORTGAGE"
    assert not home.required and purpose.required


def test_a_spec_without_ranges_still_gives_inputs():
    fields = forms.fields_from_spec({"numeric": [{"name": "x"}], "categorical": []})
    assert fields[0].min == fields[0].max == fields[0].default == ""


def test_signature_fallback_types():
    fields = forms.fields_from_signature([("n", "long"), ("x", "double"), ("s", "string")])
    assert [(f.widget, f.step) for f in fields] == [
        ("number", "1"),
        ("number", "any"),
        ("text", "any"),
    ]
