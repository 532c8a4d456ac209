// JSON schemas of the API: Fastify validates requests and serialises answers with them,
// and @fastify/swagger turns them into /openapi.json.
import { IMAGE_PIXELS } from './registry.js';

const modelQuery = {
  type: 'string',
  minLength: 1,
  maxLength: 64,
  description: 'The model to ask (see GET /models); default: the server\'s default model.',
} as const;

export const predictQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    model: modelQuery,
    run: {
      type: 'string',
      pattern: '^[0-9a-fA-F]{4,32}$',
      description: "A finished training run (its id, or a unique prefix): answer with that run's best weights, from the run store. Instead of `model`.",
    },
    image: { type: 'boolean', default: true, description: 'Include the 28x28 image the model saw, as a base64 PNG.' },
  },
} as const;

export const pixelsBody = {
  $id: 'PixelsRequest',
  type: 'object',
  description: 'An image that is already MNIST-like: 28x28, row-major, light ink on black. It goes to the model as it is.',
  additionalProperties: false,
  required: ['pixels'],
  properties: {
    pixels: {
      type: 'array',
      minItems: IMAGE_PIXELS,
      maxItems: IMAGE_PIXELS,
      items: { type: 'number', minimum: 0, maximum: 255 },
      description: `${IMAGE_PIXELS} values, 0-255 (or 0-1 with "scale": 1)`,
    },
    scale: { type: 'number', enum: [1, 255], default: 255, description: 'The value of full ink: 255 (MNIST\'s bytes) or 1.' },
  },
} as const;

export interface PixelsRequest {
  pixels: number[];
  scale: 1 | 255;
}

const bbox = {
  type: ['object', 'null'],
  description: 'Where the ink was found in the input image, in its pixels (null when the input was pixels)',
  properties: { x: { type: 'integer' }, y: { type: 'integer' }, width: { type: 'integer' }, height: { type: 'integer' } },
  required: ['x', 'y', 'width', 'height'],
} as const;

export const predictionSchema = {
  $id: 'Prediction',
  type: 'object',
  properties: {
    digit: { type: 'integer', minimum: 0, maximum: 9, example: 7 },
    confidence: { type: 'number', description: "The probability of the predicted digit (an ensemble's hard vote: its share of the votes)", example: 0.9991 },
    probabilities: {
      type: 'array',
      items: { type: 'number' },
      minItems: 10,
      maxItems: 10,
      description: "Probability of each digit 0-9; an ensemble's: the share of its members' votes (hard vote) or their mean probability (soft vote)",
    },
    model: { type: 'string', example: 'super_light' },
    vote: { type: 'string', enum: ['hard', 'soft'], description: "An ensemble's vote (absent for a single model): the digit is the majority's (ties: the higher mean probability, then the lower digit) or the highest mean probability" },
    votes: {
      type: 'array',
      description: "An ensemble's members and the digit each one gave (absent for a single model)",
      items: { type: 'object', properties: { member: { type: 'string' }, digit: { type: 'integer', minimum: 0, maximum: 9 } }, required: ['member', 'digit'] },
    },
    preprocessing: {
      type: 'object',
      description: 'What preprocessing did to turn the input into an MNIST-like image',
      properties: {
        source: { type: 'string', enum: ['image', 'pixels'] },
        format: { type: 'string', description: 'The decoded format: png, jpeg, webp, gif, or raw for pixels' },
        width: { type: 'integer', description: 'Input width in pixels' },
        height: { type: 'integer', description: 'Input height in pixels' },
        inverted: { type: 'boolean', description: 'The background was light, so the image was inverted' },
        bbox,
      },
      required: ['source', 'format', 'width', 'height', 'inverted', 'bbox'],
    },
    image: { type: 'string', description: 'The 28x28 image the model saw, as a base64 PNG (absent with ?image=false)' },
    timeMs: { type: 'number', description: 'Time from the request being parsed to the answer: preprocessing, queueing and inference' },
    timings: {
      type: 'object',
      properties: {
        preprocessMs: { type: 'number' },
        inferenceMs: { type: 'number', description: 'Waiting for and running the (batched) forward pass' },
      },
      required: ['preprocessMs', 'inferenceMs'],
    },
  },
  required: ['digit', 'confidence', 'probabilities', 'model', 'preprocessing', 'timeMs', 'timings'],
} as const;

export const batchResponse = {
  type: 'object',
  properties: {
    model: { type: 'string' },
    count: { type: 'integer' },
    results: {
      type: 'array',
      items: {
        allOf: [
          { $ref: 'Prediction#' },
          { type: 'object', properties: { filename: { type: 'string', description: 'The part\'s file name, as the client sent it' } } },
        ],
      },
    },
    timeMs: { type: 'number' },
  },
  required: ['model', 'count', 'results', 'timeMs'],
} as const;

export const modelsResponse = {
  type: 'object',
  properties: {
    default: { type: 'string', description: 'The model used when a request names none' },
    models: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', example: 'super_light' },
          description: { type: 'string' },
          params: { type: 'integer', description: 'Trainable parameters', example: 4842 },
          accuracy: { type: ['number', 'null'], description: 'Accuracy on the MNIST test set (0-1), when known', example: 0.9959 },
          source: { type: 'string', description: 'Where the weights come from' },
          default: { type: 'boolean' },
          vote: { type: 'string', enum: ['hard', 'soft'], description: 'An ensemble\'s vote (absent for a single model); its params are the sum of its members\'' },
          members: {
            type: 'array',
            description: 'An ensemble\'s members (absent for a single model)',
            items: {
              type: 'object',
              properties: { name: { type: 'string' }, model: { type: 'string', description: 'The architecture' }, params: { type: 'integer' } },
              required: ['name', 'model', 'params'],
            },
          },
        },
        required: ['name', 'description', 'params', 'accuracy', 'source', 'default'],
      },
    },
  },
  required: ['models'],
} as const;

export const healthResponse = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ok'] },
    models: { type: 'integer' },
    uptimeSeconds: { type: 'number' },
    auth: { type: 'boolean', description: 'Whether POST requests need a bearer token' },
    process: { type: 'integer', description: 'Which server process answered: 0 to N-1 with --processes N, else 0' },
  },
  required: ['status', 'models', 'uptimeSeconds', 'auth', 'process'],
} as const;

/** The bodies /predict takes besides JSON, for the OpenAPI document (Fastify validates JSON only; the route checks these). */
export const imageBodies = {
  'multipart/form-data': {
    schema: {
      type: 'object',
      properties: { file: { type: 'string', format: 'binary', description: 'A PNG, JPEG, WebP or GIF image' } },
      required: ['file'],
    },
  },
  'image/*': { schema: { type: 'string', format: 'binary', description: 'A PNG, JPEG, WebP or GIF image as the raw body' } },
} as const;

export const batchBodies = {
  'multipart/form-data': {
    schema: {
      type: 'object',
      properties: {
        file: { type: 'array', items: { type: 'string', format: 'binary' }, description: 'Images, each in a part named file' },
      },
      required: ['file'],
    },
  },
} as const;
