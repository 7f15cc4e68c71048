import { ISignal, Signal } from '@lumino/signaling';

import { errorText } from './errors';

/**
 * A form's verdict: whether what is filled in would be accepted, and why not.
 */
export interface IVerdict {
  ok: boolean;
  message: string;
  /** Not refused: a required field is still empty (the message says which). */
  incomplete?: boolean;
}

/**
 * A form's state: its values, and the service's dry run of them, asked again `delay` ms
 * after the last change, so a refusal shows before the user submits. Answers to older
 * values are dropped. Subclasses say how values become a spec, how the service checks
 * one (resolving to its refusal, or null), and what an accepted one reads as.
 */
export abstract class DryRunFormModel<V extends object, S> {
  constructor(
    values: V,
    readonly delay = 400
  ) {
    this._values = { ...values };
  }

  get values(): Readonly<V> {
    return this._values;
  }
  /** The last verdict, null while a check is pending. */
  get verdict(): IVerdict | null {
    return this._verdict;
  }
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Change some fields; the dry run follows after the delay. */
  update(values: Partial<V>): void {
    this._values = { ...this._values, ...values };
    this._verdict = null;
    this._changed.emit();
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => void this.checkNow(), this.delay);
  }

  /** Ask the service now whether the current values would be accepted. */
  async checkNow(): Promise<IVerdict> {
    window.clearTimeout(this._timer);
    const generation = ++this._generation;
    const missing = this.missing(this._values);
    const verdict: IVerdict = missing
      ? { ok: false, incomplete: true, message: missing }
      : await this._ask();
    if (generation === this._generation) {
      this._verdict = verdict;
      this._changed.emit();
    }
    return verdict;
  }

  /** The spec to submit, or throws with what is wrong in the form. */
  abstract spec(): S;

  dispose(): void {
    window.clearTimeout(this._timer);
    this._generation++;
  }

  /**
   * What to fill in first while a required field is empty (a prompt, not a refusal:
   * a form that just opened is not wrong), or null.
   */
  protected missing(values: Readonly<V>): string | null {
    return null;
  }

  /** The service's dry run of a spec: its refusal, or null when it would be accepted. */
  protected abstract check(spec: S): Promise<string | null>;

  /** What the verdict says when the service would accept the spec. */
  protected abstract accepted(spec: S): string;

  private async _ask(): Promise<IVerdict> {
    try {
      const spec = this.spec();
      const refusal = await this.check(spec);
      return refusal
        ? { ok: false, message: refusal }
        : { ok: true, message: this.accepted(spec) };
    } catch (error) {
      return { ok: false, message: errorText(error) };
    }
  }

  private _values: V;
  private _verdict: IVerdict | null = null;
  private _timer = 0;
  private _generation = 0;
  private _changed = new Signal<this, void>(this);
}
