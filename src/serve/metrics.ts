// Prometheus metrics, one registry per server (so that servers in one process, as in the
// tests, do not share counters): HTTP requests and latency, batch sizes, inference time,
// queue depth, passes in flight, model load times, and the process's own figures (RSS).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { clusterMetrics, joinClusterMetrics } from './cluster.js';
import type { ModelRegistry } from './registry.js';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'torchlet_http_requests_total',
    help: 'HTTP requests answered, by method, route and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'torchlet_http_request_duration_seconds',
    help: 'Time from receiving a request to answering it',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'torchlet_batch_size',
    help: 'Images per forward pass',
    labelNames: ['model'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly inference = new Histogram({
    name: 'torchlet_inference_duration_seconds',
    help: 'Time of one forward pass (a whole batch)',
    labelNames: ['model'] as const,
    buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'torchlet_queue_depth',
    help: 'Images waiting for a forward pass',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'torchlet_batches_in_flight',
    help: 'Forward passes running now (the model load)',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly modelLoad = new Gauge({
    name: 'torchlet_model_load_seconds',
    help: 'Time taken to load each model when the server started',
    labelNames: ['model'] as const,
    registers: [this.registry],
    aggregator: 'max',
  });
  readonly modelsLoaded: Gauge;

  constructor(models: ModelRegistry) {
    collectDefaultMetrics({ register: this.registry, prefix: 'torchlet_' });
    joinClusterMetrics(this.registry);
    this.modelsLoaded = new Gauge({
      name: 'torchlet_models_loaded',
      help: 'Models this server answers with',
      registers: [this.registry],
      // Every process of a cluster loads the same models.
      aggregator: 'max',
      collect() {
        this.set(models.list().length);
        for (const m of models.list()) if (m.loadSeconds !== undefined) modelLoad.set({ model: m.name }, m.loadSeconds);
      },
    });
    const modelLoad = this.modelLoad;
    models.observe({
      onBatch: (model, size, seconds) => {
        this.batchSize.observe({ model }, size);
        this.inference.observe({ model }, seconds);
      },
      onQueue: (model, depth, inFlight) => {
        this.queueDepth.set({ model }, depth);
        this.inFlight.set({ model }, inFlight);
      },
    });
  }

  /** The metrics in Prometheus text format: with --processes, all processes' together. */
  text(): Promise<string> {
    return clusterMetrics() ?? this.registry.metrics();
  }
}
