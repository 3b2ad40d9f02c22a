// set_service and reboot (docs/ops.md); the control calls go through the seam.
using System;
using System.Collections.Generic;
using Microsoft.Win32;

namespace Pushinstall.Agent
{
    public static class ServiceChanges
    {
        public static object Set(Args args)
        {
            string name = args.Str("name");
            string state = args.Str("state", "");
            string startMode = args.Str("start_mode", "");
            int timeoutS = args.Int("timeout_s", 60);
            if (startMode != "" && Array.IndexOf(new string[] { "Automatic", "AutomaticDelayed", "Manual", "Disabled" }, startMode) < 0)
            {
                throw new OpException("InvalidArgument", "start_mode must be Automatic, AutomaticDelayed, Manual or Disabled");
            }
            if (state != "" && state != "running" && state != "stopped")
            {
                throw new OpException("InvalidArgument", "state must be \"running\" or \"stopped\"");
            }
            ServiceInfo service = Core.Windows.FindService(name);
            if (service == null)
            {
                throw new OpException("NotFound", "no such service: " + name);
            }
            bool changed = false;
            // the start mode first: a Disabled service cannot be started
            if (startMode != "" && Services.StartMode(service.Name) != startMode)
            {
                Core.Windows.SetStartMode(service.Name, startMode);
                changed = true;
            }
            string wanted = state == "running" ? "Running" : "Stopped";
            if (state != "" && service.Status != wanted)
            {
                Core.Windows.SetServiceState(service.Name, state == "running", timeoutS);
                changed = true;
            }
            Dictionary<string, object> result = Services.Describe(Core.Windows.FindService(service.Name));
            result.Remove("exists");
            result.Remove("name");
            result.Remove("display_name");
            result["changed"] = changed;
            return result;
        }
    }

    public static class Reboot
    {
        /// <summary>Reduced to plain characters: shutdown.exe sees the reason on its command line.</summary>
        public static string PlainReason(string reason)
        {
            char[] chars = reason.ToCharArray();
            for (int i = 0; i < chars.Length; i++)
            {
                char ch = chars[i];
                bool plain = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
                             || " .,:;_()/-".IndexOf(ch) >= 0;
                chars[i] = plain ? ch : '_';
            }
            string text = new string(chars);
            if (text.Length > 200)
            {
                text = text.Substring(0, 200);
            }
            return text.Trim() == "" ? "pushinstall" : text;
        }

        /// <summary>Schedules the restart and answers at once. AutoLogonChecked goes first, so
        /// the caller can tell when LogonUI has come up again (as ansible.windows' reboot).</summary>
        public static object Run(Args args)
        {
            long delay = args.Long("delay_s", 5);
            string reason = PlainReason(args.Str("reason", "pushinstall"));
            string before = Json.Time(Core.Windows.BootTime());
            using (RegistryKey winlogon = RegistryOp.Open(@"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon", "64", true, false))
            {
                if (winlogon != null && winlogon.OpenSubKey("AutoLogonChecked") != null)
                {
                    winlogon.DeleteSubKeyTree("AutoLogonChecked");
                }
            }
            string[] shutdown = { "/r", "/f", "/t", delay.ToString(), "/d", "p:4:1", "/c", reason };
            ToolResult first = Core.Windows.RunTool("shutdown.exe", shutdown);
            if (first.ExitCode == 1190)
            {
                // a shutdown is already scheduled, maybe without restart or far off: replace it
                Core.Windows.RunTool("shutdown.exe", new string[] { "/a" });
                first = Core.Windows.RunTool("shutdown.exe", shutdown);
            }
            if (first.ExitCode != 0)
            {
                throw new OpException("Exception", "shutdown.exe failed (" + first.ExitCode + "): " + first.Output);
            }
            Dictionary<string, object> result = new Dictionary<string, object>();
            result["boot_time_before"] = before;
            return result;
        }
    }
}
