// The app module the harness loads into Switchboard nodes (SWITCHBOARD_APP) so `rpc('echo', params)` answers in-process.
export default {
  rpc: {
    echo: async (params: unknown) => params,
  },
};
