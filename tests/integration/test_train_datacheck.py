"""`medchat data check` previews formatting and shows which tokens are trained."""

import json

from medchat.app.cli import main


def test_data_check_shows_the_mask_and_counts(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"instruction": "What helps a fever?", "input": "", "output": "Drink fluids."},
                                {"instruction": "Cough?", "input": "", "output": "Rest."}]))
    assert main(["data", "check", str(data), "--base", str(tiny_model_dir), "--rows", "1"]) == 0
    out = capsys.readouterr().out
    assert "⟦Drink fluids.<|im_end|>\n⟧" in out  # trained span, bracketed without colour
    assert "What helps a fever?" in out and "⟦What" not in out
    assert "Rest." not in out  # only one row previewed
    assert "2 samples" in out and "tokens trained" in out and "bad rows: none" in out


def test_data_check_lists_bad_rows_and_fails(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "bad.json"
    data.write_text(json.dumps([{"instruction": "Q", "input": "", "output": "A."},
                                {"instruction": "Q2", "input": "", "output": ""}]))
    assert main(["data", "check", str(data), "--base", str(tiny_model_dir), "--rows", "0"]) == 1
    out = capsys.readouterr().out
    assert "1 bad rows" in out and "row 2" in out and "empty reply" in out


def test_data_check_registry_name_and_pt(tiny_model_dir, capsys):
    assert main(["data", "check", "covid_sft", "--base", str(tiny_model_dir), "--rows", "1", "--stage", "pt"]) == 0
    out = capsys.readouterr().out
    assert "covid_sft" in out and out.count("⟦") >= 1
