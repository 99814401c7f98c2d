// Readiness: the bus is verified and the node is not draining. Drives /readyz and switchboard_ready.
import type { Bus } from '../bus/bus.js';
import type { Metrics } from '../metrics/metrics.js';

export class Readiness {
  private draining = false;

  constructor(
    private readonly bus: Bus,
    private readonly metrics: Metrics,
  ) {
    bus.onHealth(() => this.update());
    this.update();
  }

  startDrain() {
    this.draining = true;
    this.update();
  }

  isDraining() {
    return this.draining;
  }

  current(): { ready: boolean; reason?: string } {
    if (this.draining) return { ready: false, reason: 'draining' };
    const h = this.bus.health();
    return h.ready ? { ready: true } : { ready: false, reason: h.reason ?? 'bus not ready' };
  }

  private update() {
    this.metrics.ready.set(this.current().ready ? 1 : 0);
  }
}
