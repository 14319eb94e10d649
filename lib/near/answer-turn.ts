/**
 * Answers from memory are handed back once per event-loop turn, together, after the turn's I/O
 * (in its check phase), as memcached's replies come back together. Handing each one back as soon
 * as it is found writes every response alone, between the reads of the next requests, and a
 * server under load then spends more per request than one whose cache is across the network.
 * Calls made while the turn's answers are being handed back (a method that awaits another cached
 * one) are answered at once: they wait for no later turn.
 */
interface Turn {
  waiting: Array<() => void> | undefined;
  answering: boolean;
}

/** One per process, shared by both builds (CommonJS and ESM) if an app loads the two. */
const turn: Turn = ((globalThis as { [key: symbol]: Turn })[Symbol.for('nestjs-memcached:answer-turn')] ??= {
  waiting: undefined,
  answering: false,
});

/**
 * The event loop's own, taken when this module loads: a test's fake timers installed later
 * replace the global one, and would hold every answer until the test advanced them. Installed
 * before, they would be taken here: answers are then handed back at once.
 */
const immediate = globalThis.setImmediate;
const batching = !('clock' in immediate) && !('_isMockFunction' in immediate);

/** Undefined when an answer may be handed back now; else a promise settled when it may. */
export function answerTurn(): Promise<void> | undefined {
  if (turn.answering || !batching) return undefined;
  if (turn.waiting === undefined) {
    turn.waiting = [];
    immediate(handBack);
    // queued in the same phase, so it runs in the same check phase, after handBack's microtasks
    immediate(turnOver);
  }
  const waiting = turn.waiting;
  return new Promise((resolve) => waiting.push(resolve));
}

function handBack(): void {
  const list = turn.waiting!;
  turn.waiting = undefined;
  turn.answering = true;
  for (const resolve of list) resolve();
}

function turnOver(): void {
  turn.answering = false;
}
