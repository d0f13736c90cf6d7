/**
 * One procedural street scene, drawn as a pinhole camera sees it: a flat road and sidewalks meeting
 * at the horizon, building facades on planes parallel to the street, and trees, persons and cars
 * placed in world metres and drawn far to near (painter's algorithm), so occlusion follows depth
 * and sizes follow perspective. Every random draw happens while the scene is laid out, never per
 * pixel, so the same seed gives the same scene (scaled) at any resolution.
 */
import { SeededRandom } from '../random.js';
import {
  type Canvas,
  fillEllipse,
  fillPolygon,
  type Paint,
  type Point,
  type Rgb,
  shadePolygon,
} from './raster.js';

export const ROAD = 0;
export const SIDEWALK = 1;
export const BUILDING = 2;
export const VEGETATION = 8;
export const SKY = 10;
export const PERSON = 11;
export const CAR = 13;
/** Cityscapes' ignore index: used only for the ego-vehicle hood some scenes show. */
export const VOID = 255;

/** Nearest depth drawn (metres): closer geometry would project to infinity. */
const ZCLIP = 0.8;
const GROUND: ReadonlySet<number> = new Set([ROAD, SIDEWALK]);

// ---------- colour helpers ----------

const scale = (c: Rgb, k: number): Rgb => [c[0] * k, c[1] * k, c[2] * k];
const mix = (a: Rgb, b: Rgb, t: number): Rgb => [
  a[0] + (b[0] - a[0]) * t,
  a[1] + (b[1] - a[1]) * t,
  a[2] + (b[2] - a[2]) * t,
];

function pick<T>(rng: SeededRandom, items: readonly T[]): T {
  return items[Math.floor(rng.next() * items.length)]!;
}

function weighted<T>(rng: SeededRandom, items: readonly (readonly [T, number])[]): T {
  let total = 0;
  for (const [, w] of items) total += w;
  let u = rng.next() * total;
  for (const [value, w] of items) {
    u -= w;
    if (u < 0) return value;
  }
  return items[items.length - 1]![0];
}

/** Brightness and per-channel jitter, so no class owns an exact colour. */
function vary(rng: SeededRandom, c: Rgb, amount: number): Rgb {
  const k = 1 + rng.uniform(-amount, amount);
  const j = amount / 2;
  return [
    c[0] * k * (1 + rng.uniform(-j, j)),
    c[1] * k * (1 + rng.uniform(-j, j)),
    c[2] * k * (1 + rng.uniform(-j, j)),
  ];
}

function hsv(h: number, s: number, v: number): Rgb {
  const f = (n: number): number => {
    const k = (n + h * 6) % 6;
    return v * (1 - s * Math.max(0, Math.min(k, 4 - k, 1))) * 255;
  };
  return [f(5), f(3), f(1)];
}

// ---------- palettes (overlapping on purpose: grey cars, grey facades, grey asphalt) ----------

const BUILDING_COLOURS: readonly Rgb[] = [
  [200, 185, 160],
  [225, 215, 190],
  [228, 226, 220],
  [180, 180, 176],
  [130, 132, 135],
  [150, 82, 62],
  [112, 64, 52],
  [220, 198, 140],
  [212, 168, 156],
  [168, 186, 200],
  [190, 160, 120],
  [150, 148, 140],
];
const ROOF_COLOURS: readonly Rgb[] = [
  [72, 70, 74],
  [148, 76, 56],
  [82, 88, 98],
];
const CAR_COLOURS: readonly (readonly [Rgb, number])[] = [
  [[226, 228, 230], 0.2],
  [[168, 172, 178], 0.2],
  [[98, 102, 106], 0.12],
  [[26, 28, 32], 0.15],
  [[32, 46, 92], 0.08],
  [[42, 82, 160], 0.05],
  [[170, 32, 30], 0.08],
  [[100, 22, 26], 0.04],
  [[44, 82, 52], 0.03],
  [[190, 176, 142], 0.03],
  [[222, 182, 44], 0.02],
];
const SKIN: readonly Rgb[] = [
  [240, 196, 168],
  [224, 172, 140],
  [198, 136, 104],
  [142, 88, 58],
  [94, 60, 42],
];
const HAIR: readonly Rgb[] = [
  [30, 26, 22],
  [70, 46, 30],
  [120, 82, 46],
  [190, 160, 112],
  [150, 150, 150],
];
const TROUSERS: readonly Rgb[] = [
  [42, 48, 72],
  [30, 30, 34],
  [92, 92, 96],
  [160, 140, 110],
  [62, 72, 112],
];
const GREENS: readonly Rgb[] = [
  [60, 96, 44],
  [76, 112, 50],
  [50, 80, 40],
  [92, 116, 56],
  [64, 100, 70],
];
const SIDEWALK_COLOURS: readonly Rgb[] = [
  [152, 152, 150],
  [172, 162, 142],
  [152, 118, 108],
  [124, 124, 124],
];

type Range = number | readonly [number, number];

/** Car body proportions in metres: length, width, beltline and roof heights, and the profile. */
const CAR_SHAPES: Readonly<
  Record<
    'sedan' | 'hatch' | 'van',
    Readonly<Record<'length' | 'width' | 'belt' | 'roof' | 'rear' | 'rearSlope' | 'hood' | 'screen', Range>>
  >
> = {
  sedan: {
    length: [4.3, 4.9],
    width: [1.75, 1.85],
    belt: [0.8, 0.92],
    roof: [1.38, 1.5],
    rear: [0.8, 1.0],
    rearSlope: [0.45, 0.6],
    hood: [1.1, 1.35],
    screen: [0.7, 0.9],
  },
  hatch: {
    length: [3.7, 4.2],
    width: [1.65, 1.78],
    belt: [0.82, 0.92],
    roof: [1.42, 1.55],
    rear: 0.25,
    rearSlope: 0.25,
    hood: [0.9, 1.0],
    screen: 0.75,
  },
  van: {
    length: [4.4, 5.0],
    width: [1.85, 2.0],
    belt: [0.95, 1.1],
    roof: [1.65, 1.95],
    rear: 0.15,
    rearSlope: 0.15,
    hood: [0.7, 0.9],
    screen: 0.55,
  },
};

interface SkyPreset {
  readonly zenith: Rgb;
  readonly horizon: Rgb;
  readonly clouds: number;
  readonly sunny: boolean;
}
const SKIES: readonly (readonly [SkyPreset, number])[] = [
  [{ zenith: [70, 125, 195], horizon: [175, 200, 225], clouds: 0.5, sunny: true }, 0.4],
  [{ zenith: [120, 155, 200], horizon: [205, 214, 225], clouds: 0.7, sunny: true }, 0.3],
  [{ zenith: [150, 158, 170], horizon: [200, 202, 206], clouds: 0.2, sunny: false }, 0.2],
  [{ zenith: [95, 130, 190], horizon: [226, 206, 176], clouds: 0.4, sunny: true }, 0.1],
];

// ---------- scene layout ----------

interface FacadeStyle {
  readonly floorH: number;
  readonly groundH: number;
  readonly colSpacing: number;
  readonly winW: number;
  readonly winH: number;
  readonly frame: Rgb | null;
  readonly glass: Rgb;
  readonly reflect: number;
  readonly shop: boolean;
  /** Seed of the building's own stream, so window draws don't depend on what is visible. */
  readonly seed: number;
}

interface Building {
  readonly z0: number;
  readonly z1: number;
  readonly height: number;
  /** Signed X of the facade plane. */
  readonly x: number;
  /** A gap shows what is behind (sky, distant trees); a park is a grove of trees on grass. */
  readonly kind: 'building' | 'park' | 'gap';
  /** Grass front garden between the sidewalk and the facade (else paved forecourt). */
  readonly yard: boolean;
  readonly color: Rgb;
  readonly style: FacadeStyle;
  readonly hedge: number;
  /** How far the building reaches away from the street (its front wall's width). */
  readonly depth: number;
  readonly roof: { readonly depth: number; readonly rise: number; readonly color: Rgb } | null;
}

interface Side {
  readonly sign: 1 | -1;
  /** |X| of the curb. */
  readonly edge: number;
  readonly walk: number;
  /** Facade brightness: the side facing away from the sun is in shade. */
  readonly light: number;
  readonly buildings: Building[];
}

interface Line {
  readonly x: number;
  readonly width: number;
  readonly dashed: boolean;
}

interface Drawable {
  /** Nearest depth, for painter's order. */
  readonly z: number;
  readonly draw: () => void;
}

class Street {
  private readonly W: number;
  private readonly H: number;
  private readonly f: number;
  private readonly camH: number;
  private readonly yh: number;
  private readonly vx: number;

  private readonly sky: SkyPreset;
  private readonly skyZenith: Rgb;
  private readonly skyHorizon: Rgb;
  private readonly cloudCover: number;
  private readonly hazeAmount: number;
  /** -1: sun on the left (left facades cast shadows rightwards), +1: right, 0: overcast. */
  private readonly sun: -1 | 0 | 1;
  private readonly shadowLength: number;
  private readonly shadowFactor: number;

  private readonly laneW: number;
  private readonly left: Side;
  private readonly right: Side;
  private readonly lines: Line[] = [];
  private readonly laneCentres: number[] = [];
  private readonly dashPeriod: number;
  private readonly dashFrac: number;
  private readonly dashPhase: number;
  private readonly crosswalk: { z0: number; z1: number } | null;
  private readonly patches: { x0: number; x1: number; z0: number; z1: number; k: number }[] = [];
  private readonly asphalt: Rgb;
  private readonly paving: Rgb;
  private readonly tile: number;
  private readonly grass: Rgb;
  private readonly zEnd: number;
  private readonly backdrop: 'buildings' | 'trees' | 'mixed';
  private readonly backdropSeed: number;
  private readonly objects: Drawable[] = [];
  private readonly hood: { height: number; color: Rgb } | null;
  private readonly look: {
    gain: Rgb;
    contrast: number;
    saturation: number;
    noise: number;
    salt: number;
  };

  constructor(
    private readonly c: Canvas,
    private readonly rng: SeededRandom,
  ) {
    this.W = c.width;
    this.H = c.height;
    // Camera: focal length and principal point relative to the image, so scenes scale.
    this.f = this.W * rng.uniform(0.95, 1.15);
    this.camH = rng.uniform(1.35, 1.7);
    this.yh = this.H * rng.uniform(0.4, 0.52);
    this.vx = this.W * rng.uniform(0.42, 0.58);

    this.sky = weighted(rng, SKIES);
    this.skyZenith = vary(rng, this.sky.zenith, 0.06);
    this.skyHorizon = vary(rng, this.sky.horizon, 0.04);
    this.cloudCover = rng.uniform(0, this.sky.clouds);
    this.hazeAmount = rng.uniform(0.1, 0.35);
    this.sun = this.sky.sunny && rng.next() < 0.7 ? (rng.next() < 0.5 ? -1 : 1) : 0;
    this.shadowLength = rng.uniform(0.2, 0.8);
    this.shadowFactor = rng.uniform(0.62, 0.8);

    // Road: the camera drives in the rightmost lane; lanes, parking and a two-way centre to its left.
    this.laneW = rng.uniform(2.9, 3.5);
    const nLeft = weighted(rng, [
      [0, 0.15],
      [1, 0.5],
      [2, 0.25],
      [3, 0.1],
    ] as const);
    const parkRight = rng.next() < 0.65;
    const parkLeft = rng.next() < (nLeft <= 1 ? 0.6 : 0.35);
    const rightEdge = this.laneW / 2 + (parkRight ? rng.uniform(2.0, 2.4) : rng.uniform(0.2, 0.6));
    const leftEdge =
      this.laneW / 2 + nLeft * this.laneW + (parkLeft ? rng.uniform(2.0, 2.4) : rng.uniform(0.2, 0.6));
    const twoWay = nLeft >= 1 && rng.next() < 0.75;
    const lineW = rng.uniform(0.11, 0.16);
    for (let k = 0; k < nLeft; k++) {
      const solid = k === 0 && twoWay && rng.next() < 0.4;
      this.lines.push({ x: -(this.laneW / 2 + k * this.laneW), width: lineW, dashed: !solid });
    }
    if (parkRight && rng.next() < 0.5) this.lines.push({ x: this.laneW / 2, width: lineW, dashed: false });
    if (!parkLeft && rng.next() < 0.5) this.lines.push({ x: -(leftEdge - 0.3), width: lineW, dashed: false });
    this.laneCentres.push(0);
    for (let k = 1; k <= nLeft; k++) this.laneCentres.push(-k * this.laneW);
    this.dashPeriod = rng.uniform(8, 12);
    this.dashFrac = rng.uniform(0.3, 0.5);
    this.dashPhase = rng.uniform(0, this.dashPeriod);
    const zc = rng.uniform(9, 30);
    this.crosswalk = rng.next() < 0.3 ? { z0: zc, z1: zc + rng.uniform(3, 4) } : null;
    const nPatches = rng.int(0, 3);
    for (let i = 0; i < nPatches; i++) {
      const x0 = rng.uniform(-leftEdge, rightEdge - 1);
      const z0 = rng.uniform(6, 40);
      this.patches.push({
        x0,
        x1: x0 + rng.uniform(0.8, 3),
        z0,
        z1: z0 + rng.uniform(1, 6),
        k: rng.uniform(0.78, 0.9),
      });
    }
    const grey = rng.uniform(78, 118);
    this.asphalt = vary(rng, [grey, grey, grey * rng.uniform(0.97, 1.06)], 0.03);
    this.paving = vary(rng, pick(rng, SIDEWALK_COLOURS), 0.08);
    this.tile = rng.uniform(0.3, 0.6);
    this.grass = vary(rng, [78, 112, 52], 0.1);

    this.zEnd = rng.uniform(70, 200);
    this.backdrop = weighted(rng, [
      ['buildings', 0.55],
      ['trees', 0.25],
      ['mixed', 0.2],
    ] as const);
    this.backdropSeed = rng.nextUint32();

    const shade = rng.uniform(0.72, 0.82);
    const even = rng.uniform(0.9, 1.0);
    this.left = this.layoutSide(-1, leftEdge, this.sun === -1 ? shade : this.sun === 1 ? 1.05 : even);
    this.right = this.layoutSide(1, rightEdge, this.sun === 1 ? shade : this.sun === -1 ? 1.05 : even);

    this.addTrees(this.left);
    this.addTrees(this.right);
    this.addCars(nLeft, twoWay, parkLeft, parkRight, leftEdge, rightEdge);
    this.addPersons();

    const ego = vary(rng, pick(rng, [[30, 32, 36] as Rgb, [60, 62, 66], [150, 152, 156]]), 0.1);
    this.hood = rng.next() < 0.25 ? { height: this.H * rng.uniform(0.05, 0.09), color: ego } : null;
    // Moderate global photometric variation: FIELD-NOTES found strong casts slow learning a lot.
    const brightness = rng.uniform(0.86, 1.12);
    this.look = {
      gain: [
        brightness * rng.uniform(0.95, 1.05),
        brightness * rng.uniform(0.95, 1.05),
        brightness * rng.uniform(0.95, 1.05),
      ],
      contrast: rng.uniform(0.9, 1.1),
      saturation: rng.uniform(0.85, 1.1),
      noise: rng.uniform(1.5, 4),
      salt: rng.nextUint32(),
    };
  }

  // ---------- projection and light ----------

  private px(X: number, Z: number): number {
    return this.vx + (this.f * X) / Z;
  }

  private py(Y: number, Z: number): number {
    return this.yh + (this.f * (this.camH - Y)) / Z;
  }

  private p(X: number, Y: number, Z: number): Point {
    const z = Math.max(Z, ZCLIP);
    return [this.px(X, z), this.py(Y, z)];
  }

  private hazeAt(Z: number): number {
    return this.hazeAmount * (1 - Math.exp(-Z / 120));
  }

  /** Colour as seen at depth Z under a light factor: shaded, then hazed towards the horizon sky. */
  private tone(rgb: Rgb, Z: number, light = 1): Rgb {
    return mix(scale(rgb, light), this.skyHorizon, this.hazeAt(Z));
  }

  private paint(rgb: Rgb, label: number, Z: number, light = 1, tex = 0.04, grain = 0.04): Paint {
    return { rgb: this.tone(rgb, Z, light), label, tex, grain };
  }

  private buildingAt(side: Side, Z: number): Building | undefined {
    for (const b of side.buildings) if (Z >= b.z0 && Z < b.z1) return b;
    return undefined;
  }

  /** The sun-side buildings' shadow reaches this far across the street (signed X), or null. */
  private shadowEdge(Z: number): number | null {
    if (this.sun === 0) return null;
    const side = this.sun === -1 ? this.left : this.right;
    const b = this.buildingAt(side, Z);
    if (b?.kind !== 'building') return null;
    return b.x - side.sign * this.shadowLength * b.height;
  }

  private lightAt(X: number, Z: number): number {
    const edge = this.shadowEdge(Z);
    if (edge === null) return 1;
    return (this.sun === -1 ? X < edge : X > edge) ? this.shadowFactor : 1;
  }

  // ---------- layout ----------

  /**
   * One side of the street: an urban block (tall, contiguous facades), suburban houses (low, set
   * back behind gardens, with gaps) or open parkland. The mix keeps sky from being a thin sliver.
   */
  private layoutSide(sign: 1 | -1, edge: number, light: number): Side {
    const rng = this.rng;
    const walk = rng.uniform(2.5, 5);
    const buildings: Building[] = [];
    const kind = weighted(rng, [
      ['urban', 0.45],
      ['suburban', 0.35],
      ['open', 0.2],
    ] as const);
    const hedgeProb = rng.next() < 0.4 ? 0.35 : 0;
    let z = -rng.uniform(0, 5);
    while (z < this.zEnd) {
      let len: number;
      let height: number;
      let setback: number;
      let segment: Building['kind'] = 'building';
      if (kind === 'urban') {
        len = rng.uniform(8, 28);
        if (buildings.length > 0 && rng.next() < 0.12) segment = 'park';
        height = rng.next() < 0.1 ? rng.uniform(18, 32) : rng.uniform(6, 18);
        setback = rng.next() < 0.7 ? 0 : rng.uniform(0.3, 1.5);
      } else if (kind === 'suburban') {
        const previous = buildings[buildings.length - 1];
        const gap = previous?.kind === 'building' && rng.next() < 0.6;
        segment = gap ? (rng.next() < 0.5 ? 'gap' : 'park') : 'building';
        len = gap ? rng.uniform(3, 10) : rng.uniform(8, 15);
        height = rng.uniform(5, 10);
        setback = rng.uniform(2, 7);
      } else {
        segment = 'park';
        len = rng.uniform(10, 30);
        height = 0;
        setback = 0;
      }
      const floorH = rng.uniform(2.9, 3.6);
      const colSpacing = rng.uniform(2.4, 4.2);
      const depth = rng.uniform(2, 4);
      const roof =
        rng.next() < (kind === 'suburban' ? 0.7 : 0.15)
          ? { depth, rise: depth * rng.uniform(1.2, 2), color: vary(rng, pick(rng, ROOF_COLOURS), 0.1) }
          : null;
      buildings.push({
        z0: z,
        z1: z + len,
        height,
        x: sign * (edge + walk + setback),
        kind: segment,
        yard: kind === 'suburban' && rng.next() < 0.75,
        color: vary(rng, pick(rng, BUILDING_COLOURS), 0.08),
        style: {
          floorH,
          groundH: floorH * rng.uniform(1.1, 1.4),
          colSpacing,
          winW: colSpacing * rng.uniform(0.35, 0.6),
          winH: floorH * rng.uniform(0.4, 0.6),
          frame: rng.next() < 0.5 ? vary(rng, [225, 222, 215], 0.05) : null,
          glass: vary(rng, [48, 56, 68], 0.2),
          reflect: rng.uniform(0.1, 0.5),
          shop: kind === 'urban' && rng.next() < 0.5,
          seed: rng.nextUint32(),
        },
        hedge: rng.next() < hedgeProb ? rng.uniform(0.8, 1.4) : 0,
        depth: kind === 'urban' ? 20 : roof ? 2 * roof.depth : rng.uniform(8, 12),
        roof,
      });
      z += len;
    }
    return { sign, edge, walk, light, buildings };
  }

  /** Z from which a point at lateral X is inside the frame's horizontal margins. */
  private zVisible(X: number): number {
    const room = X > 0 ? 0.97 * this.W - this.vx : this.vx - 0.03 * this.W;
    return (this.f * Math.abs(X)) / room;
  }

  private addTrees(side: Side): void {
    const rng = this.rng;
    if (rng.next() >= 0.5) return;
    const x = side.sign * (side.edge + rng.uniform(0.5, 0.9));
    const green = pick(rng, GREENS);
    const step = rng.uniform(7, 13);
    for (let z = rng.uniform(3, 12); z < Math.min(this.zEnd, 120); z += step * rng.uniform(0.85, 1.15)) {
      if (rng.next() < 0.85)
        this.objects.push(this.tree(x, z, rng.uniform(1.8, 3), rng.uniform(1.3, 2.6), green));
    }
  }

  private addCars(
    nLeft: number,
    twoWay: boolean,
    parkLeft: boolean,
    parkRight: boolean,
    leftEdge: number,
    rightEdge: number,
  ): void {
    const rng = this.rng;
    const lane = (xc: number, toward: boolean, parked: boolean, density: number, zStart: number): void => {
      for (let z = zStart; z < 90; ) {
        const car = this.carSpec(xc + rng.uniform(-0.25, 0.25), z, toward);
        if (rng.next() < density) this.objects.push({ z: car.z0, draw: () => this.drawCar(car) });
        z += car.L + (parked ? rng.uniform(1, 8) : rng.uniform(4, 25));
      }
    };
    if (rng.next() < 0.65) lane(0, false, false, 0.55, rng.uniform(7, 25));
    for (let k = 1; k <= nLeft; k++) {
      const toward = twoWay && k >= Math.ceil(nLeft / 2);
      lane(-k * this.laneW, toward, false, 0.45, rng.uniform(5, 30));
    }
    if (parkRight) lane(rightEdge - 1.15, false, true, rng.uniform(0.3, 0.75), rng.uniform(3, 10));
    if (parkLeft) lane(-leftEdge + 1.15, twoWay, true, rng.uniform(0.3, 0.75), rng.uniform(3, 10));
  }

  private addPersons(): void {
    const rng = this.rng;
    // Many, and near: persons are the smallest class, and a model learns a class from scratch at the
    // rate its pixels come (at 1.6 % of the pixels they stayed near IoU 0 for 400 iterations).
    const n = rng.int(6, 11) + (rng.next() < 0.35 ? rng.int(1, 3) : 0);
    for (let i = 0; i < n; i++) {
      let X: number;
      let zMin: number;
      let zMax = 40;
      if (this.crosswalk && rng.next() < 0.25) {
        // Crossing the street on the zebra.
        X = rng.uniform(-this.left.edge + 0.5, this.right.edge - 0.5);
        zMin = Math.max(this.crosswalk.z0 + 0.5, this.zVisible(X));
        zMax = this.crosswalk.z1 - 0.5;
      } else {
        let side = rng.next() < 0.6 ? this.right : this.left;
        const offset = rng.uniform(0.5, side.walk - 0.6);
        // A wide street pushes the far sidewalk out of frame until far away: use the near one.
        if (this.zVisible(side.sign * (side.edge + offset)) > 25) side = this.right;
        X = side.sign * (side.edge + Math.min(offset, side.walk - 0.6));
        zMin = Math.max(4, this.zVisible(X));
      }
      // Biased towards near persons: they carry the class's pixels at 1/8 resolution.
      const Z = Math.max(zMin, zMin + (zMax - zMin) * rng.next() ** 3);
      const person = this.personSpec(X, Z);
      this.objects.push({ z: Z, draw: () => this.drawPerson(person) });
    }
  }

  // ---------- drawing: background ----------

  render(): Uint8Array {
    this.drawSky();
    this.drawGround();
    this.drawBackdrop();
    this.drawSide(this.left);
    this.drawSide(this.right);
    // Stable sort: equal depths keep their creation order, so output is deterministic.
    const ordered = [...this.objects].sort((a, b) => b.z - a.z);
    for (const o of ordered) o.draw();
    this.drawHood();
    return this.finish();
  }

  private drawSky(): void {
    const { c, W, H, yh } = this;
    const cloud: Rgb = this.sky.sunny ? [244, 244, 246] : [214, 214, 218];
    const threshold = 0.35 - this.cloudCover * 0.6;
    const { smooth, fine } = c.noise;
    const rows = Math.min(H, Math.ceil(yh + 1));
    for (let y = 0; y < rows; y++) {
      const t = Math.min(1, Math.max(0, (y + 0.5) / yh));
      const [br, bg, bb] = mix(this.skyZenith, this.skyHorizon, t ** 0.8);
      for (let x = 0; x < W; x++) {
        // Clouds: thresholded smooth noise stretched horizontally, fading near the horizon.
        const n = smooth[c.noiseIndex(x * 0.5, y * 1.5)]!;
        const a = Math.min(1, Math.max(0, (n - threshold) / 0.3)) * (1 - t * 0.6);
        const k = a * (0.92 + 0.1 * fine[c.noiseIndex(x, y)]!);
        c.set(
          x,
          y,
          br + (cloud[0] * k - br * a),
          bg + (cloud[1] * k - bg * a),
          bb + (cloud[2] * k - bb * a),
          SKY,
        );
      }
    }
  }

  private drawGround(): void {
    const { c, W, H, f, left, right } = this;
    const mark: Rgb = [214, 214, 208];
    for (let y = 0; y < H; y++) {
      const d = y + 0.5 - this.yh;
      if (d < 0.5) continue; // the horizon band stays sky
      const Z = (f * this.camH) / d;
      const haze = this.hazeAt(Z);
      const keep = 1 - haze;
      const [hr, hg, hb] = scale(this.skyHorizon, haze);
      const lb = this.buildingAt(left, Z);
      const rb = this.buildingAt(right, Z);
      // Paved forecourts reach the facade; gardens, parks and gaps are grass past the walk's end.
      const paved = (b: Building | undefined): boolean => b?.kind === 'building' && !b.yard;
      const leftWalkEnd = lb && paved(lb) ? -lb.x : left.edge + left.walk;
      const rightWalkEnd = rb && paved(rb) ? rb.x : right.edge + right.walk;
      const shadow = this.shadowEdge(Z);
      const tiles = (this.tile * f) / Z > 3; // joints only where they are a few pixels apart
      const zebra = this.crosswalk !== null && Z >= this.crosswalk.z0 && Z < this.crosswalk.z1;
      const dashOn = (((Z + this.dashPhase) % this.dashPeriod) + this.dashPeriod) % this.dashPeriod;
      const dashVisible = dashOn < this.dashPeriod * this.dashFrac;
      const fz = Z / this.tile;
      const jointRow = fz - Math.floor(fz) < 0.07;
      for (let x = 0; x < W; x++) {
        const X = ((x + 0.5 - this.vx) * Z) / f;
        let base: Rgb;
        let k = 1;
        let label: number;
        let tex: number;
        let grain: number;
        if (X >= -left.edge && X <= right.edge) {
          label = ROAD;
          base = this.asphalt;
          tex = 0.1;
          grain = 0.12;
          let marked = false;
          for (const line of this.lines) {
            if (Math.abs(X - line.x) < line.width / 2 && (!line.dashed || dashVisible)) marked = true;
          }
          if (zebra && X > -left.edge + 0.3 && X < right.edge - 0.3 && (X + 100) % 1.0 < 0.5) marked = true;
          if (marked) {
            base = mark;
            grain = 0.2;
          } else {
            for (const lc of this.laneCentres) {
              if (Math.abs(Math.abs(X - lc) - 0.8) < 0.3) k *= 0.93; // tyre tracks
            }
            for (const pa of this.patches) {
              if (X >= pa.x0 && X < pa.x1 && Z >= pa.z0 && Z < pa.z1) k *= pa.k;
            }
          }
        } else if ((X > right.edge && X <= rightWalkEnd) || (X < -left.edge && X >= -leftWalkEnd)) {
          label = SIDEWALK;
          base = this.paving;
          tex = 0.08;
          grain = 0.08;
          const fromCurb = Math.abs(X) - (X > 0 ? right.edge : left.edge);
          if (fromCurb < 0.22) {
            k = 1.12; // curb stones
          } else if (tiles) {
            const fx = (X + 1000) / this.tile;
            if (jointRow || fx - Math.floor(fx) < 0.07) k = 0.84;
          }
        } else {
          label = VEGETATION; // grass in parks and gaps
          base = this.grass;
          tex = 0.2;
          grain = 0.35;
        }
        if (shadow !== null && (this.sun === -1 ? X < shadow : X > shadow)) k *= this.shadowFactor;
        k *= keep;
        c.set(x, y, base[0] * k + hr, base[1] * k + hg, base[2] * k + hb, label, tex, grain);
      }
    }
  }

  /** The street's far end: a row of buildings and/or a tree line across the view at zEnd. */
  private drawBackdrop(): void {
    const { c } = this;
    const rng = new SeededRandom(this.backdropSeed);
    const Z = this.zEnd;
    const xMin = ((-this.vx - 0.1 * this.W) * Z) / this.f - 10;
    const xMax = ((1.1 * this.W - this.vx) * Z) / this.f + 10;
    if (this.backdrop !== 'trees') {
      for (let x = xMin; x < xMax; ) {
        const w = rng.uniform(8, 25);
        const h = rng.uniform(6, 28);
        const color = vary(rng, pick(rng, BUILDING_COLOURS), 0.08);
        fillPolygon(
          c,
          [this.p(x, 0, Z), this.p(x + w, 0, Z), this.p(x + w, h, Z), this.p(x, h, Z)],
          this.paint(color, BUILDING, Z, 0.95),
        );
        const glass = this.paint(vary(rng, [52, 60, 72], 0.15), BUILDING, Z);
        if (this.f / Z > 1.5) {
          for (let wy = 2; wy + 1.4 < h - 1; wy += 3.2) {
            for (let wx = x + 1; wx + 1.2 < x + w - 0.5; wx += 3) {
              fillPolygon(
                c,
                [
                  this.p(wx, wy, Z),
                  this.p(wx + 1.2, wy, Z),
                  this.p(wx + 1.2, wy + 1.4, Z),
                  this.p(wx, wy + 1.4, Z),
                ],
                glass,
              );
            }
          }
        }
        x += w;
      }
    }
    if (this.backdrop !== 'buildings') {
      const green = pick(rng, GREENS);
      const zTrees = this.backdrop === 'mixed' ? Z - 5 : Z;
      for (let x = xMin; x < xMax; x += rng.uniform(3, 7)) {
        const r = rng.uniform(3, 7);
        const [cx, cy] = this.p(x, rng.uniform(3, 8), zTrees);
        const s = this.f / zTrees;
        fillEllipse(
          c,
          cx,
          cy,
          r * s,
          r * s * 0.9,
          this.paint(vary(rng, green, 0.1), VEGETATION, zTrees, 1, 0.2, 0.35),
        );
        fillPolygon(
          c,
          [
            this.p(x - r, 0, zTrees),
            this.p(x + r, 0, zTrees),
            this.p(x + r, 3, zTrees),
            this.p(x - r, 3, zTrees),
          ],
          this.paint(scale(green, 0.8), VEGETATION, zTrees, 1, 0.2, 0.35),
        );
      }
    }
  }

  private drawSide(side: Side): void {
    // Far to near: a nearer building hides the visible front wall of the one behind it.
    const buildings = [...side.buildings].sort((a, b) => b.z0 - a.z0);
    for (const b of buildings) {
      if (b.z1 < ZCLIP) continue;
      if (b.kind === 'park') this.drawPark(side, b);
      else if (b.kind === 'building') this.drawBuilding(side, b);
    }
  }

  private drawBuilding(side: Side, b: Building): void {
    const { c } = this;
    const z0 = Math.max(b.z0, ZCLIP);
    const zMid = Math.max((z0 + b.z1) / 2, ZCLIP);
    const x = b.x;
    const h = b.height;
    // Front wall (plane Z = z0, running away from the street), seen where the nearer building is lower.
    if (b.z0 > ZCLIP) {
      const xb = x + side.sign * b.depth;
      const wall: Point[] = [this.p(x, 0, b.z0), this.p(xb, 0, b.z0), this.p(xb, h, b.z0)];
      // The gable end of a pitched roof rises above the wall.
      if (b.roof) wall.push(this.p(x + side.sign * b.roof.depth, h + b.roof.rise, b.z0));
      wall.push(this.p(x, h, b.z0));
      fillPolygon(c, wall, this.paint(b.color, BUILDING, b.z0, side.light * 0.86, 0.06, 0.04));
    }
    const facade = (y0: number, y1: number, za: number, zb: number): Point[] => [
      this.p(x, y0, za),
      this.p(x, y1, za),
      this.p(x, y1, zb),
      this.p(x, y0, zb),
    ];
    fillPolygon(c, facade(0, h, z0, b.z1), this.paint(b.color, BUILDING, zMid, side.light, 0.07, 0.05));
    // Pitched roof, only where its slope faces the camera (else it lies behind the facade).
    if (b.roof && b.roof.rise * Math.abs(x) > b.roof.depth * (h - this.camH)) {
      const xr = x + side.sign * b.roof.depth;
      fillPolygon(
        c,
        [
          this.p(x, h, z0),
          this.p(x, h, b.z1),
          this.p(xr, h + b.roof.rise, b.z1),
          this.p(xr, h + b.roof.rise, z0),
        ],
        this.paint(b.roof.color, BUILDING, zMid, side.light, 0.1, 0.15),
      );
    }
    fillPolygon(c, facade(0, 0.6, z0, b.z1), this.paint(scale(b.color, 0.75), BUILDING, zMid, side.light));
    fillPolygon(
      c,
      facade(h - 0.5, h, z0, b.z1),
      this.paint(scale(b.color, 0.82), BUILDING, zMid, side.light),
    );
    this.drawWindows(side, b);
    if (b.hedge > 0) {
      const xh = x - side.sign * 0.5;
      const hedge = (rgb: Rgb): Paint => this.paint(rgb, VEGETATION, zMid, side.light, 0.2, 0.4);
      fillPolygon(
        c,
        [this.p(xh, 0, z0), this.p(xh, b.hedge, z0), this.p(xh, b.hedge, b.z1), this.p(xh, 0, b.z1)],
        hedge([52, 84, 42]),
      );
      fillPolygon(
        c,
        [
          this.p(xh, b.hedge, z0),
          this.p(x, b.hedge, z0),
          this.p(x, b.hedge, b.z1),
          this.p(xh, b.hedge, b.z1),
        ],
        hedge([70, 104, 52]),
      );
    }
  }

  private drawWindows(side: Side, b: Building): void {
    const { c } = this;
    const s = b.style;
    const rng = new SeededRandom(s.seed);
    const x = b.x;
    const quad = (y0: number, y1: number, za: number, zb: number): Point[] => [
      this.p(x, y0, za),
      this.p(x, y1, za),
      this.p(x, y1, zb),
      this.p(x, y0, zb),
    ];
    const reflection = mix(s.glass, this.skyHorizon, s.reflect);
    for (let zc = b.z0 + 0.6; zc + s.winW < b.z1 - 0.6; zc += s.colSpacing) {
      if (zc < ZCLIP + 0.5) continue;
      // Beyond a pixel per column the windows are sub-pixel: leave the plain facade.
      const spacingPx = Math.abs(this.px(x, zc) - this.px(x, zc + s.colSpacing));
      if (spacingPx < 1.5) break;
      const light = side.light;
      if (s.shop) {
        const shop = mix(s.glass, reflection, rng.next());
        fillPolygon(
          c,
          quad(0.5, s.groundH - 0.5, zc, zc + s.colSpacing * 0.8),
          this.paint(shop, BUILDING, zc, light),
        );
      }
      for (let y = s.groundH + (s.floorH - s.winH) / 2; y + s.winH < b.height - 0.7; y += s.floorH) {
        if (s.frame) {
          fillPolygon(
            c,
            quad(y - 0.12, y + s.winH + 0.12, zc - 0.1, zc + s.winW + 0.1),
            this.paint(s.frame, BUILDING, zc, light),
          );
        }
        const glass = mix(s.glass, reflection, rng.next());
        fillPolygon(
          c,
          quad(y, y + s.winH, zc, zc + s.winW),
          this.paint(glass, BUILDING, zc, light, 0.05, 0.03),
        );
      }
    }
  }

  private drawPark(side: Side, b: Building): void {
    const rng = new SeededRandom(b.style.seed);
    const inner = side.edge + side.walk;
    const green = pick(rng, GREENS);
    const trees: Drawable[] = [];
    for (let z = b.z1 - rng.uniform(1, 4); z > b.z0; z -= rng.uniform(3, 8)) {
      const x = side.sign * (inner + rng.uniform(1, 8));
      trees.push(this.tree(x, z, rng.uniform(1.5, 3), rng.uniform(2.5, 4.5), green, rng));
    }
    for (const t of trees) t.draw();
  }

  // ---------- drawing: objects ----------

  /** A tree: trunk plus a crown of overlapping leaf blobs (dark below, lit above) with a ragged rim. */
  private tree(X: number, Z: number, trunkH: number, R: number, base: Rgb, rng = this.rng): Drawable {
    const trunkW = rng.uniform(0.22, 0.4);
    const bark = vary(rng, [86, 72, 58], 0.12);
    const green = vary(rng, base, 0.12);
    const blobs: { dx: number; dy: number; r: number; k: number }[] = [];
    const rim = rng.int(6, 10);
    for (let i = 0; i < rim; i++) {
      const a = rng.uniform(0, Math.PI * 2);
      blobs.push({
        dx: Math.cos(a) * R * 0.85,
        dy: Math.sin(a) * R * 0.75,
        r: rng.uniform(0.15, 0.3) * R,
        k: rng.uniform(0.75, 0.95),
      });
    }
    const core: typeof blobs = [];
    const n = rng.int(6, 10);
    for (let i = 0; i < n; i++) {
      const dy = rng.uniform(-0.4, 0.45) * R;
      core.push({
        dx: rng.uniform(-0.55, 0.55) * R,
        dy,
        r: rng.uniform(0.45, 0.7) * R,
        k: 0.8 + (0.3 * (dy / R + 0.4)) / 0.85 + rng.uniform(-0.08, 0.08),
      });
    }
    core.sort((a, b) => a.k - b.k);
    blobs.push(...core);
    const cy = trunkH + R * 0.75;
    return {
      z: Z,
      draw: () => {
        if (Z < ZCLIP) return;
        const light = this.lightAt(X, Z);
        const s = this.f / Z;
        const [tx, ty] = this.p(X, 0, Z);
        fillPolygon(
          this.c,
          [
            [tx - (trunkW / 2) * s, ty],
            [tx + (trunkW / 2) * s, ty],
            [tx + (trunkW / 2.6) * s, ty - (trunkH + R * 0.3) * s],
            [tx - (trunkW / 2.6) * s, ty - (trunkH + R * 0.3) * s],
          ],
          this.paint(bark, VEGETATION, Z, light, 0.1, 0.15),
        );
        for (const bl of blobs) {
          fillEllipse(
            this.c,
            tx + bl.dx * s,
            ty - (cy + bl.dy) * s,
            bl.r * s,
            bl.r * s * 0.92,
            this.paint(scale(green, bl.k), VEGETATION, Z, light, 0.25, 0.4),
          );
        }
      },
    };
  }

  private personSpec(X: number, Z: number) {
    const rng = this.rng;
    const child = rng.next() < 0.08;
    const top =
      rng.next() < 0.4
        ? vary(rng, pick(rng, [[40, 40, 44] as Rgb, [220, 220, 216], [120, 120, 124], [60, 70, 100]]), 0.1)
        : hsv(rng.next(), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.85));
    return {
      X,
      Z,
      h: child ? rng.uniform(1.1, 1.4) : rng.uniform(1.55, 1.92),
      shoulder: rng.uniform(0.38, 0.48),
      stride: rng.uniform(-0.22, 0.22),
      swing: rng.uniform(-0.08, 0.08),
      skin: vary(rng, pick(rng, SKIN), 0.05),
      hair: vary(rng, pick(rng, HAIR), 0.1),
      longHair: rng.next() < 0.3,
      backView: rng.next() < 0.4,
      top,
      bottom: vary(rng, pick(rng, TROUSERS), 0.1),
      skirt: rng.next() < 0.12,
      bag:
        rng.next() < 0.3
          ? vary(rng, pick(rng, [[40, 30, 24] as Rgb, [30, 30, 34], [150, 40, 40]]), 0.1)
          : null,
      bagSide: rng.next() < 0.5 ? -1 : 1,
    };
  }

  private drawPerson(ps: ReturnType<Street['personSpec']>): void {
    const { c } = this;
    const { Z, h } = ps;
    const s = this.f / Z;
    const [fx, fy] = this.p(ps.X, 0, Z);
    const light = this.lightAt(ps.X, Z);
    // Person-local metres: dx to the right, dy up from the feet.
    const P = (dx: number, dy: number): Point => [fx + dx * s, fy - dy * s];
    const paint = (rgb: Rgb, tex = 0.05, grain = 0.05): Paint =>
      this.paint(rgb, PERSON, Z, light, tex, grain);
    const hip = 0.48 * h;
    const sh = 0.81 * h;
    const hw = ps.shoulder / 2;
    const headY = 0.915 * h;
    const headRy = 0.065 * h;
    const headRx = 0.052 * h;
    const st = ps.stride;
    if (ps.longHair)
      fillPolygon(
        c,
        [P(-headRx, headY), P(headRx, headY), P(headRx, sh - 0.02 * h), P(-headRx, sh - 0.02 * h)],
        paint(ps.hair),
      );
    // Legs (trousers) and shoes, or a skirt over thin legs.
    const legs = ps.skirt ? scale(ps.skin, 0.9) : ps.bottom;
    const lw = ps.skirt ? 0.08 : 0.12;
    fillPolygon(
      c,
      [P(-0.13, hip), P(-0.13 + lw, hip), P(-0.02 + st, 0.02), P(-0.02 + st - lw, 0.02)],
      paint(legs),
    );
    fillPolygon(
      c,
      [P(0.13 - lw, hip), P(0.13, hip), P(0.02 - st + lw, 0.02), P(0.02 - st, 0.02)],
      paint(scale(legs, 0.9)),
    );
    const shoe = paint([34, 30, 28]);
    fillPolygon(c, [P(-0.15 + st, 0.08), P(0.0 + st, 0.08), P(0.02 + st, 0), P(-0.15 + st, 0)], shoe);
    fillPolygon(c, [P(0.0 - st, 0.08), P(0.15 - st, 0.08), P(0.15 - st, 0), P(-0.02 - st, 0)], shoe);
    if (ps.skirt)
      fillPolygon(
        c,
        [P(-0.15, hip + 0.04 * h), P(0.15, hip + 0.04 * h), P(0.2, 0.3 * h), P(-0.2, 0.3 * h)],
        paint(ps.bottom),
      );
    // Torso with sloped shoulders, then arms slightly darker than the shirt.
    fillPolygon(
      c,
      [
        P(-hw * 0.82, hip - 0.03 * h),
        P(hw * 0.82, hip - 0.03 * h),
        P(hw, sh - 0.02 * h),
        P(hw - 0.06, sh + 0.025 * h),
        P(-hw + 0.06, sh + 0.025 * h),
        P(-hw, sh - 0.02 * h),
      ],
      paint(ps.top),
    );
    const arm = paint(scale(ps.top, 0.86));
    const sw = ps.swing;
    fillPolygon(
      c,
      [
        P(-hw, sh - 0.01 * h),
        P(-hw + 0.09, sh - 0.01 * h),
        P(-hw + 0.08 + sw, hip - 0.02 * h),
        P(-hw - 0.01 + sw, hip - 0.02 * h),
      ],
      arm,
    );
    fillPolygon(
      c,
      [
        P(hw - 0.09, sh - 0.01 * h),
        P(hw, sh - 0.01 * h),
        P(hw + 0.01 - sw, hip - 0.02 * h),
        P(hw - 0.08 - sw, hip - 0.02 * h),
      ],
      arm,
    );
    const [lhx, lhy] = P(-hw + 0.035 + sw, hip - 0.04 * h);
    const [rhx, rhy] = P(hw - 0.035 - sw, hip - 0.04 * h);
    fillEllipse(c, lhx, lhy, 0.045 * s, 0.05 * s, paint(ps.skin));
    fillEllipse(c, rhx, rhy, 0.045 * s, 0.05 * s, paint(ps.skin));
    if (ps.bag) {
      const bx = ps.bagSide * (hw + 0.02);
      fillPolygon(
        c,
        [
          P(bx, hip + 0.06 * h),
          P(bx + ps.bagSide * 0.14, hip + 0.06 * h),
          P(bx + ps.bagSide * 0.14, hip - 0.12 * h),
          P(bx, hip - 0.12 * h),
        ],
        paint(ps.bag),
      );
    }
    // Neck, head; hair on top (all of it when seen from behind).
    fillPolygon(
      c,
      [P(-0.04, sh), P(0.04, sh), P(0.04, headY - headRy * 0.8), P(-0.04, headY - headRy * 0.8)],
      paint(scale(ps.skin, 0.9)),
    );
    const [hx, hy] = P(0, headY);
    if (ps.backView) {
      fillEllipse(c, hx, hy, headRx * s, headRy * s, paint(ps.hair, 0.05, 0.15));
    } else {
      fillEllipse(
        c,
        hx,
        hy - 0.15 * headRy * s,
        headRx * 1.06 * s,
        headRy * 0.95 * s,
        paint(ps.hair, 0.05, 0.15),
      );
      fillEllipse(c, hx, hy + 0.12 * headRy * s, headRx * 0.94 * s, headRy * 0.86 * s, paint(ps.skin));
    }
  }

  private carSpec(xc: number, z0: number, toward: boolean) {
    const rng = this.rng;
    const kind = weighted(rng, [
      ['sedan', 0.45],
      ['hatch', 0.3],
      ['van', 0.25],
    ] as const);
    const shape = CAR_SHAPES[kind];
    const draw = (range: Range): number =>
      typeof range === 'number' ? range : rng.uniform(range[0], range[1]);
    const [L, w, hb, hr, rear, rearSlope, hood, screen] = [
      draw(shape.length),
      draw(shape.width),
      draw(shape.belt),
      draw(shape.roof),
      draw(shape.rear),
      draw(shape.rearSlope),
      draw(shape.hood),
      draw(shape.screen),
    ];
    return {
      xc,
      z0,
      L,
      w,
      hb,
      hr,
      toward,
      near: toward ? hood : rear,
      nearSlope: toward ? screen : rearSlope,
      far: toward ? rear : hood,
      farSlope: toward ? rearSlope : screen,
      color: vary(rng, weighted(rng, CAR_COLOURS), 0.06),
      reflect: rng.uniform(0.1, 0.35),
    };
  }

  private drawCar(car: ReturnType<Street['carSpec']>): void {
    const { c } = this;
    const { z0, L, w, hb, hr } = car;
    if (z0 < 3.5) return;
    const cx = this.px(car.xc, z0);
    if (cx < -0.3 * this.W || cx > 1.3 * this.W) return;
    const x0 = car.xc - w / 2;
    const x1 = car.xc + w / 2;
    const zMid = z0 + L / 2;
    const light = this.lightAt(car.xc, zMid);
    const P = (x: number, y: number, z: number): Point => this.p(x, y, z0 + z);
    const paint = (rgb: Rgb, k = 1): Paint => this.paint(scale(rgb, k), CAR, zMid, light, 0.02, 0.03);
    const body = car.color;
    const glass = mix([30, 34, 42], this.skyHorizon, car.reflect);
    const dark: Rgb = [26, 26, 28];
    // Contact shadow on the ground only.
    shadePolygon(
      c,
      [P(x0 - 0.15, 0, -0.15), P(x1 + 0.15, 0, -0.15), P(x1 + 0.15, 0, L + 0.1), P(x0 - 0.15, 0, L + 0.1)],
      0.45,
      GROUND,
    );
    // Side face seen obliquely (left side for cars right of the camera, and vice versa).
    const sideX = x0 > 0.05 ? x0 : x1 < -0.05 ? x1 : null;
    const { near, nearSlope, far, farSlope } = car;
    if (sideX !== null) {
      const profile: [number, number][] = [
        [0, 0.3],
        [0, hb],
        [near, hb],
        [near + nearSlope, hr],
        [L - far - farSlope, hr],
        [L - far, hb],
        [L, hb - 0.05],
        [L, 0.3],
      ];
      fillPolygon(
        c,
        profile.map(([z, y]) => P(sideX, y, z)),
        paint(body, 0.8),
      );
      const wa = near + nearSlope * 0.2 + 0.08;
      const wb = L - far - farSlope * 0.2 - 0.08;
      fillPolygon(
        c,
        [
          P(sideX, hb + 0.05, wa),
          P(sideX, hr - 0.06, near + nearSlope + 0.05),
          P(sideX, hr - 0.06, L - far - farSlope - 0.05),
          P(sideX, hb + 0.05, wb),
        ],
        paint(glass),
      );
      const pillar = (wa + wb) / 2;
      fillPolygon(
        c,
        [
          P(sideX, hb, pillar - 0.06),
          P(sideX, hr, pillar - 0.06),
          P(sideX, hr, pillar + 0.06),
          P(sideX, hb, pillar + 0.06),
        ],
        paint(body, 0.75),
      );
      for (const zw of [0.8, L - 0.85]) {
        const [wx, wy] = P(sideX, 0.32, zw);
        const rx = Math.abs(this.px(sideX, z0 + zw + 0.32) - this.px(sideX, z0 + zw - 0.32)) / 2;
        const ry = (0.32 * this.f) / (z0 + zw);
        fillEllipse(c, wx, wy, rx, ry, paint(dark));
        fillEllipse(c, wx, wy, rx * 0.55, ry * 0.55, paint([120, 122, 126]));
      }
    }
    // Cabin surfaces span the full width: an inset would open a see-through gap at the pillars.
    if (this.camH > hr + 0.03) {
      const ra = near + nearSlope;
      const rb = L - far - farSlope;
      fillPolygon(
        c,
        [P(x0, hr, ra), P(x1, hr, ra), P(x1, hr, rb), P(x0, hr, rb)],
        paint(mix(body, this.skyHorizon, 0.2), 1.05),
      );
    }
    // Rear window / windscreen on its slope, framed by pillars in body colour.
    fillPolygon(
      c,
      [P(x0, hb, near), P(x1, hb, near), P(x1, hr, near + nearSlope), P(x0, hr, near + nearSlope)],
      paint(body, 0.95),
    );
    fillPolygon(
      c,
      [
        P(x0 + 0.16, hb + 0.04, near + 0.05 * nearSlope),
        P(x1 - 0.16, hb + 0.04, near + 0.05 * nearSlope),
        P(x1 - 0.2, hr - 0.04, near + 0.95 * nearSlope),
        P(x0 + 0.2, hr - 0.04, near + 0.95 * nearSlope),
      ],
      paint(glass),
    );
    fillPolygon(
      c,
      [P(x0, hb, 0), P(x1, hb, 0), P(x1, hb, near), P(x0, hb, near)],
      paint(mix(body, this.skyHorizon, 0.15), 1.05),
    );
    // Tyres showing under the near bumper (behind the near face, so drawn first).
    for (const [a, b] of [
      [x0 + 0.05, x0 + 0.3],
      [x1 - 0.3, x1 - 0.05],
    ] as const) {
      fillPolygon(c, [P(a, 0, 0.7), P(b, 0, 0.7), P(b, 0.36, 0.7), P(a, 0.36, 0.7)], paint(dark));
    }
    fillPolygon(c, [P(x0, 0.3, 0), P(x1, 0.3, 0), P(x1, hb, 0), P(x0, hb, 0)], paint(body, 0.92));
    fillPolygon(c, [P(x0, 0.28, 0), P(x1, 0.28, 0), P(x1, 0.44, 0), P(x0, 0.44, 0)], paint(scale(dark, 1.5)));
    const lamp: Rgb = car.toward ? [226, 224, 206] : [190, 24, 22];
    for (const [a, b] of [
      [x0 + 0.06, x0 + 0.34],
      [x1 - 0.34, x1 - 0.06],
    ] as const) {
      fillPolygon(
        c,
        [P(a, hb - 0.24, 0), P(b, hb - 0.24, 0), P(b, hb - 0.08, 0), P(a, hb - 0.08, 0)],
        paint(lamp),
      );
    }
    if (car.toward) {
      fillPolygon(
        c,
        [
          P(car.xc - 0.35, hb - 0.28, 0),
          P(car.xc + 0.35, hb - 0.28, 0),
          P(car.xc + 0.35, hb - 0.1, 0),
          P(car.xc - 0.35, hb - 0.1, 0),
        ],
        paint(dark),
      );
    }
    fillPolygon(
      c,
      [
        P(car.xc - 0.26, 0.46, 0),
        P(car.xc + 0.26, 0.46, 0),
        P(car.xc + 0.26, 0.58, 0),
        P(car.xc - 0.26, 0.58, 0),
      ],
      paint([228, 228, 222]),
    );
  }

  /** The ego vehicle's hood along the bottom edge: ignored (255), as Cityscapes does. */
  private drawHood(): void {
    if (!this.hood) return;
    const { W, H } = this;
    const pts: Point[] = [[0, H]];
    for (let i = 0; i <= 16; i++) {
      const x = (i / 16) * W;
      const u = (x - W / 2) / (W / 2);
      pts.push([x, H - this.hood.height * (1 - 0.45 * u * u)]);
    }
    pts.push([W, H]);
    fillPolygon(this.c, pts, { rgb: this.hood.color, label: VOID, tex: 0.15, grain: 0.03 });
  }

  /** Global look (exposure, mild colour cast, contrast, saturation) and sensor noise → 8-bit RGB. */
  private finish(): Uint8Array {
    const src = this.c.rgb;
    // Clamped array: assignment rounds and clamps to 0–255.
    const out = new Uint8ClampedArray(src.length);
    const { gain, contrast, saturation, noise, salt } = this.look;
    const gr = gain[0] * contrast;
    const gg = gain[1] * contrast;
    const gb = gain[2] * contrast;
    const offset = 128 * (1 - contrast);
    const noiseStep = (2 * noise) / 65536;
    for (let i = 0, p = 0; i < src.length; i += 3, p++) {
      const r = src[i]! * gr;
      const g = src[i + 1]! * gg;
      const b = src[i + 2]! * gb;
      const lum = 0.299 * r + 0.587 * g + 0.114 * b;
      // Integer hash of the pixel index: cheap, deterministic grain.
      let h = Math.imul(p ^ salt, 0x9e3779b1);
      h ^= h >>> 15;
      h = Math.imul(h, 0x85ebca77);
      h ^= h >>> 13;
      const base = lum * (1 - saturation) + offset + (h & 0xffff) * noiseStep - noise;
      out[i] = base + r * saturation;
      out[i + 1] = base + g * saturation;
      out[i + 2] = base + b * saturation;
    }
    return new Uint8Array(out.buffer);
  }
}

/** Draws one scene into the canvas and returns its 8-bit RGB pixels (labels stay in `canvas.label`). */
export function drawStreetScene(canvas: Canvas, rng: SeededRandom): Uint8Array {
  return new Street(canvas, rng).render();
}
