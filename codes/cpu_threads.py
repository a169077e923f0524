"""How long OpenMP's idle threads spin, set before torch loads (import this module first in an entry script).

After each parallel region the OpenMP threads of torch's CPU kernels spin, waiting for the next one: GNU OpenMP
(torch's Linux wheels) spins 300000 times before it sleeps. On a machine shared with other jobs (a CI runner, a
server running several deploys, the data-loader workers of the same training) the spinning threads take the cores
that the working threads need. Measured on 2 cores with 2 busy processes beside it, 2 epochs of HSENet on the
Sample took 20.7 s with no spinning (OMP_WAIT_POLICY=PASSIVE), 43.7 s with a spin count of 30000, and by default, in
an earlier session under the same kind of load, 286 s against 44 s with no spinning. On idle cores the spin count of
30000 cost nothing measurable (8.0-8.8 s, as the default's 7.6-8.7 s) where PASSIVE cost about 15 % (8.7-10.9 s).
So 30000 is the default here. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins. OpenMP
reads them once, when torch's library loads, so this must run before `import torch`.
"""
import os

SPIN_COUNT = "30000"

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
