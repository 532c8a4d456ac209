// Drawing digits on the page's canvas with the mouse, shared by the browser tests.
import type { Page } from 'playwright-core';

export type Stroke = [number, number][];

/** Strokes in the canvas's own 280x280 coordinates, as a person would draw each digit. */
export const STROKES: Record<number, Stroke[]> = {
  1: [[[150, 45], [146, 110], [142, 175], [140, 235]]],
  7: [[[75, 60], [140, 58], [205, 60], [185, 105], [160, 160], [138, 235]]],
  0: [
    Array.from({ length: 41 }, (_, i): [number, number] => {
      const t = (i / 40) * 2 * Math.PI;
      return [140 + 62 * Math.sin(t), 140 - 88 * Math.cos(t)];
    }),
  ],
};

/**
 * Draws the strokes; each pointerup starts a prediction. `settle`, when given, is called
 * just before each pointerup and its promise awaited after it (e.g. the /predict response).
 */
export async function draw(page: Page, strokes: Stroke[], settle?: () => Promise<unknown>): Promise<void> {
  const box = await page.locator('#canvas').boundingBox();
  if (!box) throw new Error('the canvas is not visible');
  const at = ([x, y]: [number, number]): [number, number] => [box.x + (x / 280) * box.width, box.y + (y / 280) * box.height];
  for (const stroke of strokes) {
    const [first, ...rest] = stroke;
    await page.mouse.move(...at(first!));
    await page.mouse.down();
    // Intermediate steps so that pointermove fires along the path, as a hand would.
    for (const p of rest) await page.mouse.move(...at(p), { steps: 6 });
    const settled = settle?.();
    await page.mouse.up();
    await settled;
  }
}
