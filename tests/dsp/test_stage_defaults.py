"""Each stage default exists once (percepnet.dsp.stage_defaults): the settings registry (and
so the CLI, config file and window), Denoiser and StreamProcessor agree with it."""
import inspect

from model_fixtures import tiny_model

from percepnet.app.settings import PARAMS, STAGE_PARAMS, stage_defaults
from percepnet.dsp.denoiser import Denoiser
from percepnet.dsp.processor import StreamProcessor
from percepnet.dsp.stage_defaults import STAGE_DEFAULTS


def test_registry_denoiser_and_stream_processor_share_the_stage_defaults():
    assert set(STAGE_PARAMS) == set(STAGE_DEFAULTS)
    assert stage_defaults() == STAGE_DEFAULTS
    assert {k: PARAMS[k].default for k in STAGE_DEFAULTS} == STAGE_DEFAULTS
    den = Denoiser(tiny_model())
    proc = StreamProcessor()
    for name, default in STAGE_DEFAULTS.items():
        assert getattr(den, name) is default, name
        assert getattr(proc, name) is default, name


def test_no_stage_default_is_spelled_out_in_a_signature():
    """The keyword defaults are None (= the table), not a second copy of a value."""
    for fn in (Denoiser.__init__, StreamProcessor.__init__):
        params = inspect.signature(fn).parameters
        for name in STAGE_DEFAULTS:
            assert params[name].default is None, (fn.__qualname__, name)
