// The standard normal's CDF in log space and the truncated normal's log density, mass and
// quantile, accurate in the tails (as Optuna's _truncnorm, after SciPy).

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

/** erfc with relative error below 1.2e-7 everywhere (Numerical Recipes' erfcc, Chebyshev). */
function erfcx(x: number): number {
  // Returns exp(x^2) * erfc(x) for x >= 0, so callers can stay in log space.
  const t = 1 / (1 + 0.5 * x);
  const poly =
    -1.26551223 +
    t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * Math.exp(poly);
}

/** log(Phi(z)). */
export function logNdtr(z: number): number {
  if (z > 6) return -ndtr(-z);
  if (z > -5) return Math.log(ndtr(z));
  // Phi(z) = erfc(-z / sqrt 2) / 2 = exp(-z^2 / 2) * erfcx(-z / sqrt 2) / 2
  const x = -z / Math.SQRT2;
  return -x * x + Math.log(erfcx(x)) - Math.LN2;
}

/** Phi(z). */
export function ndtr(z: number): number {
  const x = z / Math.SQRT2;
  if (x >= 0) return 1 - 0.5 * Math.exp(-x * x) * erfcx(x);
  return 0.5 * Math.exp(-x * x) * erfcx(-x);
}

function logDiff(logP: number, logQ: number): number {
  // log(exp(logP) - exp(logQ)) for logP >= logQ
  if (logQ === -Infinity) return logP;
  return logP + Math.log1p(-Math.exp(logQ - logP));
}

/** log(Phi(b) - Phi(a)) for a <= b. */
export function logGaussMass(a: number, b: number): number {
  if (b <= 0) return logDiff(logNdtr(b), logNdtr(a));
  if (a > 0) return logDiff(logNdtr(-a), logNdtr(-b));
  return Math.log1p(-ndtr(a) - ndtr(-b));
}

export function normLogPdf(z: number): number {
  return -0.5 * z * z - LOG_SQRT_2PI;
}

/** Log density at standardised z of a standard normal truncated to [a, b]. */
export function truncLogPdf(z: number, a: number, b: number): number {
  if (z < a || z > b) return -Infinity;
  return normLogPdf(z) - logGaussMass(a, b);
}

/** The z with log(Phi(z)) = y, by bisection on [-100, 100] (monotone, so exact to float precision). */
function ndtriExp(y: number): number {
  let lo = -100;
  let hi = 100;
  let m = 0;
  for (let i = 0; i < 100; i++) {
    m = (lo + hi) / 2;
    if (logNdtr(m) < y) lo = m;
    else hi = m;
  }
  return m;
}

function logSum(x: number, y: number): number {
  const m = Math.max(x, y);
  if (m === -Infinity) return -Infinity;
  return m + Math.log(Math.exp(x - m) + Math.exp(y - m));
}

/** Quantile q of a standard normal truncated to [a, b]. */
export function truncPpf(q: number, a: number, b: number): number {
  if (q <= 0) return a;
  if (q >= 1) return b;
  const mass = logGaussMass(a, b);
  if (a < 0) return ndtriExp(logSum(logNdtr(a), Math.log(q) + mass));
  return -ndtriExp(logSum(logNdtr(-b), Math.log1p(-q) + mass));
}
