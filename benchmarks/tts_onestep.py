"""One-step (teacher-forced) MCD of residual CRBM checkpoints on the TTS validation prompts.

Each frame is predicted from the *real* previous frames and its controls: by the linear start
(``W h`` left out), by mean-field (10 passes from the linear prediction) and by a Monte-Carlo
mean (average of ``E[v | h]`` over Gibbs steps 11–30). Against the free-running scores of
``benchmarks/tts.py`` this separates what the hidden units learn from the drift they add when
a generation feeds on its own output.

    python benchmarks/tts_onestep.py CKPT [CKPT ...] [--val-fraction 0.05]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from seqboltz.data import TTSDataModule
from seqboltz.models import ResidualCRBM, load_model
from seqboltz.speech import mel_cepstral_distortion


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", nargs="+")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dm = TTSDataModule(val_fraction=args.val_fraction)
    dm.setup()
    wf = dm.features
    assert wf is not None
    clips, ctls, o = dm.clips("val"), dm.control_clips("val"), dm.order
    hist = np.concatenate([np.stack([z[t - o : t][::-1] for t in range(o, len(z))]) for z in clips])
    cond = {
        "history": torch.from_numpy(hist),
        "controls": torch.from_numpy(np.concatenate([c[o:] for c in ctls])),
    }
    real = wf.inverse_transform(np.concatenate([z[o:] for z in clips]))[:, wf.mcep_slice]

    def mcd(pred: torch.Tensor) -> float:
        raw = wf.inverse_transform(pred.numpy())[:, wf.mcep_slice]
        return float(mel_cepstral_distortion(real, raw).mean())

    for path in args.ckpt:
        m = load_model(path)
        if not isinstance(m, ResidualCRBM):
            raise SystemExit(f"{path}: not a ResidualCRBM")
        m = m.double().eval()
        with torch.no_grad():
            p = m.frame_params(cond)
            linear = m.visible_mean(torch.zeros(len(hist), m.n_hidden, dtype=torch.float64), p)
            v = linear
            for _ in range(10):
                v = m.visible_mean(torch.sigmoid(m.hidden_input(v, p)), p)
            g = torch.Generator().manual_seed(0)
            acc, vv = torch.zeros_like(linear), linear
            for s in range(30):
                u = torch.rand(len(hist), m.n_hidden, generator=g, dtype=torch.float64)
                vv = m.visible_mean((u < torch.sigmoid(m.hidden_input(vv, p))).double(), p)
                if s >= 10:
                    acc += vv
        print(
            f"{path}: linear start {mcd(linear):.3f}, mean-field {mcd(v):.3f}, "
            f"Monte-Carlo mean {mcd(acc / 20):.3f} dB",
            flush=True,
        )


if __name__ == "__main__":
    main()
