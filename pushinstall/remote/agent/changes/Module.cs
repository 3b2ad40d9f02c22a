// The changes module (issue 12): the ops that change a machine, compiled on the target as a
// second assembly against the core when a session first needs one of them, so that a compliance
// check never carries them (docs/ops.md "Modules").
namespace Pushinstall.Agent
{
    /// <summary>Called by Modules.Load once the assembly is loaded: the core answers these ops
    /// from then on.</summary>
    public static class ChangesModule
    {
        public static void Register()
        {
            Core.Register("download", Download.Run);
            Core.Register("expand_archive", FileChanges.ExpandArchive);
            Core.Register("write_secret", FileChanges.WriteSecret);
            Core.Register("run_process", ProcessRun.Run);
            Core.Register("set_service", ServiceChanges.Set);
            Core.Register("set_registry", RegistryChanges.Set);
            Core.Register("reboot", Reboot.Run);
        }
    }
}
