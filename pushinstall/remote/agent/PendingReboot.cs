// pending_reboot: each signal by name, as ComputerManagementDsc's PendingReboot reports them.
using System;
using System.Collections.Generic;
using System.IO;

namespace Pushinstall.Agent
{
    public static class PendingReboot
    {
        private const string SessionManager = @"HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager";
        private const string ComputerName = @"HKLM:\SYSTEM\CurrentControlSet\Control\ComputerName";
        private const string Services = @"HKLM:\SYSTEM\CurrentControlSet\Services\";
        /// <summary>The ASR filter drivers: the installer refuses (exit 62) when one is on disk
        /// without its service key, i.e. an uninstall not yet followed by a restart.</summary>
        private static readonly string[] AsrDrivers = { "InDskFlt", "involflt" };

        private static bool NonEmpty(object value)
        {
            if (value == null)
            {
                return false;
            }
            string[] items = value as string[];
            if (items == null)
            {
                return Convert.ToString(value) != "";
            }
            foreach (string item in items)
            {
                if (!string.IsNullOrEmpty(item))
                {
                    return true;
                }
            }
            return false;
        }

        private static bool NonZero(object value)
        {
            return value != null && !(value is int && (int)value == 0);
        }

        private static bool AsrDriverOrphaned()
        {
            string drivers = Core.Windows.DriversDirectory();
            foreach (string driver in AsrDrivers)
            {
                if (File.Exists(Path.Combine(drivers, driver + ".sys")) && !RegistryOp.KeyExists(Services + driver))
                {
                    return true;
                }
            }
            return false;
        }

        public static object Fact(Args query)
        {
            object active = RegistryOp.Value(ComputerName + @"\ActiveComputerName", "ComputerName");
            object next = RegistryOp.Value(ComputerName + @"\ComputerName", "ComputerName");
            Dictionary<string, object> signals = new Dictionary<string, object>();
            signals["pending_file_rename"] = NonEmpty(RegistryOp.Value(SessionManager, "PendingFileRenameOperations"));
            signals["pending_file_rename2"] = NonEmpty(RegistryOp.Value(SessionManager, "PendingFileRenameOperations2"));
            signals["component_based_servicing"] = RegistryOp.KeyExists(
                @"HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending");
            signals["windows_update"] = RegistryOp.KeyExists(
                @"HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired");
            signals["computer_rename"] = active != null && next != null
                && Convert.ToString(active) != Convert.ToString(next);
            signals["update_exe_volatile"] = NonZero(RegistryOp.Value(@"HKLM:\SOFTWARE\Microsoft\Updates", "UpdateExeVolatile"));
            signals["domain_join"] = RegistryOp.Value(Services + "Netlogon", "JoinDomain") != null
                || RegistryOp.Value(Services + "Netlogon", "AvoidSpnSet") != null;
            signals["asr_driver_uninstalled"] = AsrDriverOrphaned();
            if (query.Bool("sccm", false))
            {
                signals["sccm_client"] = Core.Windows.SccmRebootPending();
            }
            bool pending = false;
            foreach (object signal in signals.Values)
            {
                pending = pending || (bool)signal;
            }
            Dictionary<string, object> fact = new Dictionary<string, object>();
            fact["pending"] = pending;
            fact["signals"] = signals;
            return fact;
        }
    }
}
