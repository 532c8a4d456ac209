# Usage: /usr/bin/python3 scripts/torchvision_peer_steps.py MODEL N
# PyTorch peer of the shortened torchvision runs: the twin from python/zoo.py, Adam lr 1e-3, batch 64,
# the first N training images in order (no shuffle, as a check of whether the loss moves), MNIST mean/std.
import os, sys, time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT + '/python')
import torch, torch.nn.functional as F
from zoo import build, normalise
from evaluate_weights import read_idx
torch.manual_seed(42); torch.set_num_threads(2)
name, n = sys.argv[1], int(sys.argv[2])
x = torch.from_numpy(read_idx(ROOT + '/data/mnist/train-images-idx3-ubyte.gz')[:n].copy()).float().div(255).unsqueeze(1)
y = torch.from_numpy(read_idx(ROOT + '/data/mnist/train-labels-idx1-ubyte.gz')[:n].copy()).long()
x = normalise(x)
m = build(name); m.train()
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
t0 = time.time(); losses = []
for i in range(0, n, 64):
    out = m(x[i:i+64]); loss = F.cross_entropy(out, y[i:i+64])
    opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
k = len(losses)
print(f'{name}: PyTorch {torch.__version__}, {k} Adam steps at batch 64 on the first {n} images: mean loss of steps 1-10 {sum(losses[:10])/10:.4f}, of the last 10 {sum(losses[-10:])/10:.4f}; {time.time()-t0:.0f}s')
