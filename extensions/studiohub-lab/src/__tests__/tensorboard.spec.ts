import {
  closeSettingsPaneByDefault,
  TENSORBOARD_SETTINGS_KEY
} from '../tensorboard/model';

describe("TensorBoard's settings pane", () => {
  beforeEach(() => window.localStorage.clear());

  const saved = () =>
    JSON.parse(window.localStorage.getItem(TENSORBOARD_SETTINGS_KEY) ?? 'null');

  it('starts closed for a browser that never opened TensorBoard', () => {
    closeSettingsPaneByDefault();
    expect(saved()).toEqual({ timeSeriesSettingsPaneOpened: false });
  });

  it("keeps TensorBoard's other settings", () => {
    window.localStorage.setItem(
      TENSORBOARD_SETTINGS_KEY,
      JSON.stringify({ scalarSmoothing: 0.3, pageSize: 12 })
    );
    closeSettingsPaneByDefault();
    expect(saved()).toEqual({
      scalarSmoothing: 0.3,
      pageSize: 12,
      timeSeriesSettingsPaneOpened: false
    });
  });

  it('keeps the choice of a user who opened the pane', () => {
    const opened = JSON.stringify({ timeSeriesSettingsPaneOpened: true });
    window.localStorage.setItem(TENSORBOARD_SETTINGS_KEY, opened);
    closeSettingsPaneByDefault();
    expect(window.localStorage.getItem(TENSORBOARD_SETTINGS_KEY)).toBe(opened);
  });

  it('leaves settings it cannot read alone', () => {
    for (const value of ['not json', '[1]', 'null']) {
      window.localStorage.setItem(TENSORBOARD_SETTINGS_KEY, value);
      closeSettingsPaneByDefault();
      expect(window.localStorage.getItem(TENSORBOARD_SETTINGS_KEY)).toBe(value);
    }
  });
});
