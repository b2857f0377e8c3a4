// placeholder, replaced below
export const PLAYGROUND_HTML = '<!doctype html><title>edgelm</title>';
