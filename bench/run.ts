// `npm run bench`: torchlet against Debian's PyTorch 1.13.1 on the same machine, model
// (SuperLight) and thread count, each figure the median of repetitions that alternate
// between the two sides after a warm-up (issue 5). See bench/README.md.
//
//   npm run bench                      # full: every figure, results.json, README table
//   npm run bench -- --quick           # smoke run (CI): tiny sizes, results.quick.json
//   npm run bench -- --skip-full-run   # full, without the 15-epoch runs of figure 5
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { writeFileSync } from 'node:fs';
import { loadRawDataset } from '../src/data/mnist.js';
import { Dataset, getThreads, Model, native, setThreads, superLight, DOCUMENTED_PARAMS } from '../src/index.js';
import { EVAL_VARIANTS, evalFigure } from './eval.js';
import { referenceRun, torchletFullRun, type FullRunRep } from './full-run.js';
import { latencyFigure } from './latency.js';
import { onnxBenchmark, parseOnnxOptions } from './onnx.js';
import { parseServeOptions, serveBenchmark } from './serve.js';
import { parseZooOptions, zooBenchmark } from './zoo.js';
import {
  BATCH,
  BENCH,
  comparison,
  cpuInfo,
  loadedBlas,
  debianVersions,
  EVAL_BATCH,
  fixed,
  Hello,
  int,
  log,
  markdown,
  median,
  parseOptions,
  pct,
  printTable,
  PythonWorker,
  quantile,
  ratioOf,
  SEED,
  stats,
  targetText,
  threadsText,
  updateReadme,
  verdict,
  type Figure,
  type Machine,
  type Stats,
} from './runner.js';
import {
  BATCHED_AUG_VARIANTS,
  DOCUMENTED_FORWARD_MACS,
  fastest,
  forwardMacs,
  NOAUG_VARIANTS,
  perSecond,
  REFERENCE_VARIANT,
  trainFigures,
  type TorchletTrainRep,
  type TrainRunResult,
} from './train.js';

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const cores = availableParallelism();
  const cpu = cpuInfo();
  const loadStart = loadavg();
  log(`torchlet bench (${opts.quick ? 'quick' : 'full'}): ${cpu.model}, ${cores} cores, ${threadsText(opts.threads)} on both sides`);
  if (!opts.quick && (loadStart[0] ?? 0) > 0.5 * cores) {
    log(`warning: load average ${loadStart.map(fixed(2)).join(' ')} on ${cores} cores: the machine is busy and the figures will be noisy`);
  }
  if (!opts.quick && (opts.trainReps < 3 || opts.shortReps < 3 || (opts.fullRun && opts.fullRunReps < 3))) {
    log('warning: fewer than 3 repetitions for some figure; the issue asks for at least 3');
  }

  // The same thread count on both sides, set before any libtorch work so that the worker
  // threads trainEpoch and evaluate run on pick it up.
  setThreads(opts.threads);
  if (getThreads() !== opts.threads) throw new Error(`setThreads(${opts.threads}) left libtorch with ${getThreads()} threads`);

  const raw = await loadRawDataset(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {});
  const trainSet = Dataset.fromRaw(raw.train);
  const testSet = Dataset.fromRaw(raw.test);

  const pyArgs = [join(BENCH, 'pytorch_bench.py'), '--data', raw.dir, '--threads', String(opts.threads)];
  if (opts.refThreads !== undefined) pyArgs.push('--ref-threads', String(opts.refThreads));
  const py = new PythonWorker(opts.python, pyArgs);
  const cleanup = (): void => py.kill();
  process.once('exit', cleanup);

  try {
    const hello: Hello = await py.request(Hello, { cmd: 'hello' });
    if (hello.threads !== opts.threads) throw new Error(`PyTorch runs ${hello.threads} threads, torchlet ${opts.threads}`);
    const probe = new Model(superLight, { seed: SEED });
    const torchletParams = probe.numParams();
    probe.dispose();
    if (torchletParams !== DOCUMENTED_PARAMS.super_light || hello.params !== DOCUMENTED_PARAMS.super_light) {
      throw new Error(`SuperLight has ${torchletParams} parameters in torchlet and ${hello.params} in PyTorch, expected ${DOCUMENTED_PARAMS.super_light}`);
    }
    const macs = forwardMacs(superLight);
    if (macs !== DOCUMENTED_FORWARD_MACS) log(`warning: SuperLight's forward pass counts ${macs} multiply-adds, the issue says ${DOCUMENTED_FORWARD_MACS}`);
    const haveTorchvision = hello.torchvision !== null;
    if (!haveTorchvision) {
      const msg = `torchvision is not importable by ${opts.python} (${hello.torchvision_error}); install python3-torchvision and python3-pil`;
      if (!opts.quick) throw new Error(`${msg}: the reference pipeline (figures 2 and 5) needs it`);
      log(`warning: ${msg}; skipping the reference-pipeline measurement`);
    }
    log(
      `PyTorch ${hello.torch} (torchvision ${hello.torchvision ?? 'missing'}), ${threadsText(hello.threads)}; the reference pipeline at ` +
        `${threadsText(hello.ref_threads)} (PyTorch's default here: ${hello.default_threads})`,
    );

    // Figures 1 and 6: the train step without augmentation.
    log(`[1/5] train step, no augmentation, data in memory, batch ${BATCH}: ${opts.trainImages} images per rep, ${opts.trainReps} reps`);
    const noAug = await trainFigures(opts, py, trainSet, false, NOAUG_VARIANTS);

    // Figures 2 and 6: with the reference augmentation.
    log(`[2/5] train with the reference augmentation: ${opts.trainImages} images per rep, ${opts.trainReps} reps`);
    const withAug = await trainFigures(opts, py, trainSet, true, [...(haveTorchvision ? [REFERENCE_VARIANT] : []), ...BATCHED_AUG_VARIANTS]);

    // Figure 3: evaluation at batch 1000.
    log(`[3/5] evaluation, batch ${EVAL_BATCH}: ${opts.evalImages} test images per rep, ${opts.shortReps} reps`);
    const evaluation = await evalFigure(opts, py, testSet);

    // Figure 4: single-image latency.
    log(`[4/5] single-image prediction latency: ${opts.latencyCount} predictions per rep, ${opts.shortReps} reps`);
    const latency = await latencyFigure(opts, py, raw.test);

    // Figure 5: the full reference run, torchlet then PyTorch, per repetition.
    const fullRuns: FullRunRep[] = [];
    if (opts.fullRun) {
      log(`[5/5] full reference run with augmentation: ${opts.fullRunEpochs} epochs, ${opts.fullRunReps} reps (minutes each)`);
      for (let r = 0; r < opts.fullRunReps; r++) {
        const t = await torchletFullRun(opts, trainSet, testSet);
        log(`  full run rep ${r + 1}/${opts.fullRunReps}: torchlet ${t.wall.toFixed(1)} s, test ${pct(t.finalTestAccuracy)}`);
        const p = await referenceRun(opts, raw.dir);
        log(`  full run rep ${r + 1}/${opts.fullRunReps}: PyTorch ${p.wall.toFixed(1)} s, test ${pct(p.finalTestAccuracy)}`);
        fullRuns.push({ torchlet: t, pytorch: p });
      }
    } else {
      log(`[5/5] full reference run: skipped (${opts.quick ? '--quick' : '--skip-full-run'})`);
    }

    // ---- assemble ----------------------------------------------------------------------
    const torchletPerSecond = (reps: TorchletTrainRep[]): Stats => stats(reps.map((r) => r.samples / r.wall));
    const boundary = (reps: TorchletTrainRep[]): Stats => stats(reps.map((r) => (r.wall - r.native) / r.wall));
    const th = threadsText(opts.threads);
    const refCfg = `torchvision DataLoader over PIL images, 2 workers, ${threadsText(hello.ref_threads)} (PyTorch's default)`;
    const bestNoAug = fastest(noAug, NOAUG_VARIANTS);
    const bestAug = fastest(withAug, BATCHED_AUG_VARIANTS);
    const notRun = `not run (${opts.quick ? '--quick' : '--skip-full-run'})`;
    const figures: Figure[] = [
      {
        id: 'train_noaug',
        title: `1. Train step, no augmentation, in memory, batch ${BATCH}`,
        unit: 'images/s',
        format: int,
        torchlet: torchletPerSecond(noAug.torchlet),
        pytorch: bestNoAug?.stats ?? null,
        pytorchConfig: `uint8 tensor in memory, ${bestNoAug?.variant.layout ?? '?'} (the faster layout), ${th}`,
        target: { op: '>=', value: 1.05, on: 'ratio' },
      },
      {
        id: 'train_aug_vs_reference',
        title: '2a. Train with the reference augmentation, vs the reference pipeline',
        unit: 'images/s',
        format: int,
        torchlet: torchletPerSecond(withAug.torchlet),
        pytorch: perSecond(withAug.pytorch[REFERENCE_VARIANT.id] ?? []),
        pytorchConfig: haveTorchvision ? refCfg : 'skipped: torchvision missing',
        target: { op: '>=', value: 2.0, on: 'ratio' },
      },
      {
        id: 'train_aug_vs_best',
        title: '2b. Train with the reference augmentation, vs the best PyTorch setup',
        unit: 'images/s',
        format: int,
        torchlet: torchletPerSecond(withAug.torchlet),
        pytorch: bestAug?.stats ?? null,
        pytorchConfig: `uint8 tensor in memory, batched affine + perspective via one grid_sample, ${bestAug?.variant.layout ?? '?'} (the faster layout), ${th}`,
        target: { op: '>=', value: 1.3, on: 'ratio' },
      },
      {
        id: 'eval',
        title: `3. Evaluation, batch ${EVAL_BATCH}`,
        unit: 'images/s',
        format: int,
        torchlet: stats(evaluation.torchlet),
        pytorch: stats(evaluation.pytorch[evaluation.best] ?? []),
        pytorchConfig: `inference_mode, ${evaluation.best} (the fastest of ${EVAL_VARIANTS.length} modes), ${th}`,
        target: { op: '>=', value: 1.0, on: 'ratio' },
      },
      {
        id: 'predict_p50',
        title: '4. Single-image prediction latency, p50',
        unit: 'µs',
        format: fixed(1),
        torchlet: stats(latency.torchletP50),
        pytorch: stats(latency.pytorchP50),
        pytorchConfig: `numpy uint8 → float → normalise → model → argmax, inference_mode, ${th}`,
      },
      {
        id: 'predict_p99',
        title: '4. Single-image prediction latency, p99',
        unit: 'µs',
        format: fixed(1),
        torchlet: stats(latency.torchletP99),
        pytorch: stats(latency.pytorchP99),
        pytorchConfig: `numpy uint8 → float → normalise → model → argmax, inference_mode, ${th}`,
      },
      {
        id: 'full_run_wall',
        title: `5. Full ${opts.fullRunEpochs}-epoch reference run with augmentation, evaluation included`,
        unit: 's',
        format: fixed(1),
        torchlet: fullRuns.length ? stats(fullRuns.map((r) => r.torchlet.wall)) : null,
        pytorch: fullRuns.length ? stats(fullRuns.map((r) => r.pytorch.wall)) : null,
        pytorchConfig: fullRuns.length ? `bench/reference_train.py: ${refCfg}` : notRun,
        target: { op: '<=', value: 0.5, on: 'ratio' },
      },
      {
        id: 'full_run_accuracy',
        title: `5. Final test accuracy of that run, seed ${SEED}`,
        unit: '%',
        format: (x) => (100 * x).toFixed(2),
        torchlet: fullRuns.length ? stats(fullRuns.map((r) => r.torchlet.finalTestAccuracy)) : null,
        pytorch: fullRuns.length ? stats(fullRuns.map((r) => r.pytorch.finalTestAccuracy)) : null,
        pytorchConfig: fullRuns.length ? 'bench/reference_train.py' : notRun,
        compare: 'difference',
      },
      {
        id: 'boundary_noaug',
        title: '6. JS/N-API boundary share of trainEpoch, no augmentation',
        unit: '% of wall time',
        format: pct,
        torchlet: boundary(noAug.torchlet),
        pytorch: null,
        pytorchConfig: '',
        target: { op: '<', value: 0.03, on: 'torchlet' },
      },
      {
        id: 'boundary_aug',
        title: '6. JS/N-API boundary share of trainEpoch, with augmentation',
        unit: '% of wall time',
        format: pct,
        torchlet: boundary(withAug.torchlet),
        pytorch: null,
        pytorchConfig: '',
        target: { op: '<', value: 0.03, on: 'torchlet' },
      },
    ];

    // Achieved GFLOP/s of the train step: forward 2 x MACs, backward twice the forward.
    const trainFlops = 3 * 2 * macs;
    const gflops = (imagesPerSecond: number | undefined): number | null => (imagesPerSecond === undefined ? null : (imagesPerSecond * trainFlops) / 1e9);
    const gf = {
      forwardMacsPerImage: macs,
      trainFlopsPerImage: trainFlops,
      peakGflops: opts.peakGflops,
      torchletNoAug: gflops(figures[0]?.torchlet?.median),
      pytorchNoAug: gflops(figures[0]?.pytorch?.median),
      torchletAug: gflops(figures[2]?.torchlet?.median),
      pytorchBestAug: gflops(figures[2]?.pytorch?.median),
    };
    const gfText = (x: number | null): string => (x === null ? '—' : `${x.toFixed(1)} GFLOP/s (${((100 * x) / opts.peakGflops).toFixed(1)}% of peak)`);
    const cpuShare = (reps: TrainRunResult[] | undefined): number => median((reps ?? []).map((r) => r.cpu_seconds / r.seconds));
    const cpuPerWall = {
      torchletNoAug: median(noAug.torchlet.map((r) => r.cpu / r.wall)),
      torchletAug: median(withAug.torchlet.map((r) => r.cpu / r.wall)),
      pytorch: Object.fromEntries(Object.entries({ ...noAug.pytorch, ...withAug.pytorch }).map(([id, reps]) => [id, cpuShare(reps)])),
    };
    const pyVariantRates = Object.fromEntries(
      Object.entries({ ...noAug.pytorch, ...withAug.pytorch }).map(([id, reps]) => [id, perSecond(reps)?.median ?? null]),
    );

    // ---- print -------------------------------------------------------------------------
    console.log('');
    printTable(figures);
    console.log('');
    console.log(
      `Train step arithmetic: ${macs.toLocaleString('en-US')} multiply-adds forward = ${((2 * macs) / 1e6).toFixed(2)} MFLOP/image, ` +
        `${(trainFlops / 1e6).toFixed(2)} MFLOP/image with backward; peak ${opts.peakGflops.toFixed(0)} GFLOP/s`,
    );
    console.log(`  no augmentation: torchlet ${gfText(gf.torchletNoAug)}, PyTorch ${gfText(gf.pytorchNoAug)}`);
    console.log(`  with augmentation (model only): torchlet ${gfText(gf.torchletAug)}, PyTorch best ${gfText(gf.pytorchBestAug)}`);
    console.log(
      `PyTorch training setups (images/s): ${Object.entries(pyVariantRates).map(([id, v]) => `${id} ${v === null ? '—' : int(v)}`).join(', ')}`,
    );
    console.log(`PyTorch evaluation modes (images/s): ${Object.entries(evaluation.pytorch).map(([k, v]) => `${k} ${int(median(v))}`).join(', ')}`);
    console.log(
      `CPU busy while training (cores): torchlet ${cpuPerWall.torchletNoAug.toFixed(2)} no aug, ${cpuPerWall.torchletAug.toFixed(2)} aug; ` +
        `PyTorch ${Object.entries(cpuPerWall.pytorch).map(([id, v]) => `${id} ${v.toFixed(2)}`).join(', ')} (main process only)`,
    );
    if (fullRuns.length) {
      console.log(
        `Full runs, final test accuracy: torchlet ${fullRuns.map((r) => pct(r.torchlet.finalTestAccuracy)).join(', ')}; ` +
          `PyTorch ${fullRuns.map((r) => pct(r.pytorch.finalTestAccuracy)).join(', ')}`,
      );
    }
    const misses = figures.filter((f) => verdict(f) === 'MISS').map((f) => f.id);
    console.log(misses.length ? `Targets missed: ${misses.join(', ')} (reported; a miss is not a failure)` : 'All measured targets met.');

    // ---- write -------------------------------------------------------------------------
    const machine: Machine = {
      cpu: cpu.model,
      cores,
      flags: cpu.flags,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
      libtorch: native().libtorchVersion,
      torch: hello.torch,
      torchvision: hello.torchvision,
      python: hello.python,
      numpy: hello.numpy,
      debianPackages: debianVersions(),
      blas: loadedBlas(),
      pytorchDefaultThreads: hello.default_threads,
      pytorchParallelBackend: hello.parallel_backend,
      loadavgStart: loadStart,
      loadavgEnd: loadavg(),
    };
    const date = startedAt.toISOString();
    const reduced = [
      ...(opts.trainImages < 60_000 ? [`training figures over ${opts.trainImages.toLocaleString('en-US')} images per repetition`] : []),
      ...(opts.fullRunTrainImages !== undefined || opts.fullRunTestImages !== undefined
        ? [`full runs on ${opts.fullRunTrainImages ?? raw.train.count} training and ${opts.fullRunTestImages ?? raw.test.count} test images`]
        : []),
    ];
    const pkgs = machine.debianPackages;
    const caption =
      `Measured by \`npm run bench\` on ${date.slice(0, 10)}: ${machine.cpu}, ${cores} cores (${machine.flags.join(', ')}), ` +
      `${th} on both sides; Node ${machine.node} with libtorch ${pkgs['libtorch-dev'] ?? machine.libtorch} against Debian's PyTorch ` +
      `${pkgs['python3-torch'] ?? machine.torch}${machine.torchvision ? ` / torchvision ${machine.torchvision}` : ''}, ${machine.blas} on both; ` +
      `SuperLight (${DOCUMENTED_PARAMS.super_light.toLocaleString('en-US')} parameters) on both sides. Each figure is the median of ` +
      `${opts.trainReps === opts.shortReps ? opts.trainReps : `${opts.trainReps} (training) or ${opts.shortReps} (others)`} repetitions ` +
      `alternating between the two sides after a warm-up${fullRuns.length ? ` (the full runs: ${opts.fullRunReps} repetition${opts.fullRunReps === 1 ? '' : 's'}, no warm-up)` : ''}, min–max in brackets; ` +
      `training repetitions are ${opts.trainImages === 60_000 ? 'one 60,000-image epoch each' : `${opts.trainImages.toLocaleString('en-US')} images each`}. ` +
      `Ratio: torchlet ÷ PyTorch (for latency and wall time lower is better).` +
      (reduced.length ? ` Reduced sizes: ${reduced.join('; ')}.` : '');
    const extra = [
      `Train step: torchlet ${gfText(gf.torchletNoAug)}, PyTorch ${gfText(gf.pytorchNoAug)}, against a peak of about ${opts.peakGflops.toFixed(0)} GFLOP/s ` +
        `(${(trainFlops / 1e6).toFixed(2)} MFLOP per image: ${macs.toLocaleString('en-US')} multiply-adds forward, backward counted as twice the forward).`,
      ...(fullRuns.length
        ? [
            '',
            `Final test accuracy per run: torchlet ${fullRuns.map((r) => pct(r.torchlet.finalTestAccuracy)).join(', ')}; ` +
              `PyTorch ${fullRuns.map((r) => pct(r.pytorch.finalTestAccuracy)).join(', ')}.`,
          ]
        : []),
      '',
      `Raw samples and every PyTorch setup tried are in [bench/results.json](bench/results.json); the method is in [bench/README.md](bench/README.md).`,
    ];
    const md = markdown(figures, `_${caption}_`, extra);
    const results = {
      schema: 1,
      mode: opts.quick ? 'quick' : 'full',
      date,
      machine,
      config: {
        threads: opts.threads,
        referenceThreads: hello.ref_threads,
        batch: BATCH,
        evalBatch: EVAL_BATCH,
        trainImagesPerRep: opts.trainImages,
        warmupImages: opts.warmImages,
        trainReps: opts.trainReps,
        shortReps: opts.shortReps,
        evalImages: opts.evalImages,
        latencyPredictionsPerRep: opts.latencyCount,
        fullRun: opts.fullRun
          ? {
              reps: opts.fullRunReps,
              epochs: opts.fullRunEpochs,
              trainImages: opts.fullRunTrainImages ?? raw.train.count,
              testImages: opts.fullRunTestImages ?? raw.test.count,
            }
          : null,
        model: { name: superLight.name, params: DOCUMENTED_PARAMS.super_light, forwardMacs: macs },
      },
      figures: figures.map((f) => ({
        id: f.id,
        title: f.title,
        unit: f.unit,
        torchlet: f.torchlet,
        pytorch: f.pytorch,
        pytorchConfig: f.pytorchConfig,
        ratio: ratioOf(f),
        comparison: comparison(f),
        target: f.target ? { ...f.target, text: targetText(f.target, f.format), verdict: verdict(f) } : null,
      })),
      details: {
        trainNoAug: noAug,
        trainAug: withAug,
        pytorchTrainSetups: pyVariantRates,
        eval: evaluation,
        predict: {
          torchletP50: latency.torchletP50,
          torchletP99: latency.torchletP99,
          pytorchP50: latency.pytorchP50,
          pytorchP99: latency.pytorchP99,
          pooled: {
            torchlet: { p50: quantile(latency.torchletAll, 0.5), p99: quantile(latency.torchletAll, 0.99) },
            pytorch: { p50: quantile(latency.pytorchAll, 0.5), p99: quantile(latency.pytorchAll, 0.99) },
          },
        },
        fullRuns,
        gflops: gf,
        cpuPerWall,
      },
      markdown: md,
    };
    writeFileSync(opts.out, `${JSON.stringify(results, null, 2)}\n`);
    const shown = (path: string): string => (relative(process.cwd(), path).startsWith('..') ? path : relative(process.cwd(), path));
    console.log(`\nwrote ${shown(opts.out)}`);
    if (opts.readme !== undefined && updateReadme(opts.readme, md)) console.log(`updated the table in ${shown(opts.readme)}`);

    if (opts.serve) {
      log('[serve] the serving benchmark (bench/serve.ts)');
      await serveBenchmark(parseServeOptions([...(opts.quick ? ['--quick'] : []), '--python', opts.python, ...(opts.readme === undefined ? ['--no-readme'] : ['--readme', opts.readme])]));
    }
    if (opts.onnx) {
      log('[onnx] onnxruntime-web beside torchlet native (bench/onnx.ts)');
      await onnxBenchmark(parseOnnxOptions([...(opts.quick ? ['--quick'] : []), '--threads', String(opts.threads), ...(opts.readme === undefined ? ['--no-readme'] : ['--readme', opts.readme])]));
    }
    if (opts.zoo) {
      log('[zoo] the zoo against PyTorch (bench/zoo.ts)');
      await zooBenchmark(parseZooOptions([...(opts.quick ? ['--quick'] : []), '--threads', String(opts.threads), '--python', opts.python, ...(opts.readme === undefined ? ['--no-readme'] : ['--readme', opts.readme])]));
    }
  } finally {
    await py.close();
    process.removeListener('exit', cleanup);
    trainSet.dispose();
    testSet.dispose();
  }
}

main().then(
  // onnxruntime-web's WebAssembly runtime (bench/onnx.ts) keeps the event loop alive after
  // its sessions are released, so the benchmark ends itself once everything is written.
  () => process.exit(),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
