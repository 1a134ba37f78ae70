"""Configuration: file, environment, and clear errors."""
import pytest

from connectors.errors import ConfigError
from streams.settings import load_settings


def test_thresholds_from_file_and_env(tmp_path):
    cfg = tmp_path / "z.toml"
    cfg.write_text('[kafka]\nbootstrap_servers = "k1:9092,k2:9092"\n'
                   '[coldchain.excursion]\nheat_breach_minutes = 30\n'
                   '[prescription.over_supply]\noutpatient_days = 5\n')
    s = load_settings(cfg, environ={"ZHIJIAN_TOPIC_PREFIX": "prod.", "ZHIJIAN_METRICS_PORT": "9000"})
    assert s.kafka.servers == ["k1:9092", "k2:9092"]
    assert s.detectors["coldchain.excursion"].heat_breach_minutes == 30.0
    assert s.detectors["prescription.over_supply"].outpatient_days == 5
    assert s.topic("alerts") == "prod.alerts" and s.worker.metrics_port == 9000


@pytest.mark.parametrize("text,needle", [
    ("[coldchain.excursion]\nheat_limit = 3\n", "unknown setting [coldchain.excursion] heat_limit"),
    ("[coldchain.excurshun]\nx = 1\n", "unknown config section [coldchain.excurshun]"),
    ("[coldchain.excursion]\nheat_above_c = 'warm'\n", "should be a float"),
    ("[kafka\n", "not valid TOML"),
    ('[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\n', "SASL needs sasl_username"),
    ("[worker]\ncheckpoint_interval_s = 0\n", "checkpoint_interval_s = 0.0 must be more than 0 and at most 60"),
])
def test_bad_config_is_one_clear_error(tmp_path, text, needle):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, environ={})
    assert needle in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_later_config_files_override_earlier_ones_key_by_key(tmp_path):
    base, site = tmp_path / "region.toml", tmp_path / "site.toml"
    base.write_text('[claim.over_standard]\nprices = { "CT" = 300.0 }\ntolerance_pct = 1.0\n'
                    '[waste.category_mismatch]\nlicences = { "FAC-1" = ["infectious"] }\n')
    site.write_text('[claim.over_standard]\ntolerance_pct = 2.5\n[worker]\napp_id = "site"\n')
    for s in (load_settings([base, site], environ={}),
              load_settings(environ={"ZHIJIAN_CONFIG": f"{base}:{site}"})):
        assert s.detectors["claim.over_standard"].prices == {"CT": 300.0}
        assert s.detectors["claim.over_standard"].tolerance_pct == 2.5
        assert s.detectors["waste.category_mismatch"].licences == {"FAC-1": ["infectious"]}
        assert s.worker.app_id == "site"


def test_a_dictionary_setting_must_be_a_table(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[claim.unbundling]\npackages = ["S-LIVER"]\n')
    with pytest.raises(ConfigError, match=r"\[claim.unbundling\] packages = \['S-LIVER'\] should be a dict"):
        load_settings(cfg, environ={})


def test_a_licence_of_the_wrong_shape_is_one_line_naming_the_shape(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[waste.category_mismatch]\ncarriers = { "CR-1" = { categories = ["sharps"], until = "2027" } }\n')
    with pytest.raises(ConfigError, match=r"carriers.CR-1 should be a list of categories or \{categories = \[\.\.\.\], "
                                          r"valid_from"):
        load_settings(cfg, environ={})
    cfg.write_text('[waste.category_mismatch]\ncarriers = { "CR-1" = { categories = ["sharps"], '
                   'valid_until = "31/12/2027" } }\n')
    with pytest.raises(ConfigError, match="carriers.CR-1: dates are written YYYY-MM-DD"):
        load_settings(cfg, environ={})


def test_the_documented_configuration_example_loads(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    start = readme.index("```toml") + len("```toml")
    cfg = tmp_path / "readme.toml"
    cfg.write_text(readme[start:readme.index("```", start)].replace('sasl_password = "…"', 'sasl_password = "x"'))
    s = load_settings(cfg, environ={})
    assert s.detectors["claim.split_admission"].max_gap_days == 15
    assert s.detectors["waste.category_mismatch"].licences["FAC-1"][0] == "infectious"
    assert s.detectors["waste.category_mismatch"].carriers["CR-1"]["valid_until"] == "2029-02-28"
    assert s.detectors["prescription.drug_usage"].key_monitored["D-OXI1G"]["basis"].startswith("第一批国家重点监控")
    assert s.detectors["claim.antimicrobial_stewardship"].drugs["D-CRO1G"]["atc"] == "J01DD04"
    assert s.detectors["waste.generation_per_bed"].beds["H301"] == 1200
    assert s.detectors["waste.generation_per_bed"].peer_groups["H203"] == "secondary"


def test_durable_state_can_be_turned_off_from_the_environment():
    assert load_settings(environ={}).worker.durable_state is True
    assert load_settings(environ={"ZHIJIAN_DURABLE_STATE": "false"}).worker.durable_state is False


def test_the_checkpoint_interval_comes_from_the_file_or_the_environment_and_reaches_the_app(tmp_path):
    from streams.worker.app import faust_app

    assert load_settings(environ={}).worker.checkpoint_interval_s == 1.0
    cfg = tmp_path / "z.toml"
    cfg.write_text("[worker]\ncheckpoint_interval_s = 2\n")
    assert load_settings(cfg, environ={}).worker.checkpoint_interval_s == 2.0
    s = load_settings(cfg, environ={"ZHIJIAN_CHECKPOINT_INTERVAL_S": "3.5"})
    assert s.worker.checkpoint_interval_s == 3.5
    assert faust_app(s).conf.broker_commit_interval == 3.5


def test_every_environment_variable_the_settings_read_is_documented():
    from pathlib import Path

    from streams.settings import ENV
    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    assert [v for v in ENV if f"`{v}`" not in doc] == []
