import { DryRunForm } from '../components/dryRunForm';
import { IEndpointSpec, IKernelOptions } from '../tokens';
import { DeployFormModel, IDeployValues } from './model';

/**
 * The Deploy as Endpoint… form: endpoint name, model path, image and size (the
 * catalog's, those that cannot run disabled with their reason), replicas and the new
 * version's canary share. It shows the service's dry run of what is filled in and
 * keeps Deploy disabled while it is refused.
 */
export class DeployForm extends DryRunForm<IDeployValues, IEndpointSpec> {
  constructor(form: DeployFormModel, options: IKernelOptions | null) {
    super(form, options, {
      className: 'jp-StudioHub-DeployForm',
      verdictLabel: 'Can this model be deployed'
    });
    const values = form.values;

    this.field(
      'Endpoint name',
      this.text('name', values.name, 'iris (lowercase, digits, dashes)')
    );
    this.field(
      'Model',
      this.text('model', values.model, 'models/net or model.onnx')
    );
    this.imageAndSize();
    const replicas = document.createElement('input');
    replicas.type = 'number';
    replicas.name = 'replicas';
    replicas.min = '1';
    replicas.max = '16';
    replicas.value = String(values.replicas);
    replicas.addEventListener('input', () =>
      this.form.update({ replicas: Number(replicas.value) })
    );
    this.field('Replicas', replicas);
    const canary = document.createElement('input');
    canary.type = 'number';
    canary.name = 'canary';
    canary.min = '0';
    canary.max = '100';
    canary.placeholder = '100 (all traffic once ready)';
    canary.title =
      'A new version of an existing endpoint gets this share of the requests once its replicas are ready; the rest stays on the previous version until you promote or roll back.';
    canary.value = values.canary === null ? '' : String(values.canary);
    canary.addEventListener('input', () =>
      this.form.update({
        canary: canary.value.trim() === '' ? null : Number(canary.value)
      })
    );
    this.field('Canary %', canary);

    // A new version of one of my endpoints starts from its serving version's image,
    // size and replicas (as the service does when they are left out).
    const inherit = () => {
      const kept = form.inherited();
      if (!kept) {
        return;
      }
      for (const key of ['image', 'size'] as const) {
        const input = this.node.querySelector<
          HTMLSelectElement | HTMLInputElement
        >(`[name="${key}"]`);
        if (input) {
          if (
            input instanceof HTMLSelectElement &&
            ![...input.options].some(o => o.value === kept[key])
          ) {
            input.append(new Option(kept[key], kept[key]));
          }
          input.value = kept[key];
        }
      }
      replicas.value = String(kept.replicas);
      form.update(kept);
    };
    this.node
      .querySelector('input[name="name"]')
      ?.addEventListener('input', inherit);
    inherit();

    this.startChecking();
  }
}
