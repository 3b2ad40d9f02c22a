// Services: the `service` fact (set_service: changes/Services.cs); the control calls go through the seam.
using System;
using System.Collections.Generic;
using Microsoft.Win32;

namespace Pushinstall.Agent
{
    /// <summary>What the service control manager says about one service.</summary>
    public class ServiceInfo
    {
        public string Name;
        public string DisplayName;
        public string Status;
    }

    public static class Services
    {
        private static readonly string[] Modes = { "Boot", "System", "Automatic", "Manual", "Disabled" };

        /// <summary>From the registry: ServiceController.StartType needs .NET 4.6.1.</summary>
        public static string StartMode(string name)
        {
            using (RegistryKey key = RegistryOp.Open(@"HKLM:\SYSTEM\CurrentControlSet\Services\" + name))
            {
                if (key == null)
                {
                    return null;
                }
                object start = key.GetValue("Start", null);
                object delayed = key.GetValue("DelayedAutostart", 0);
                if (!(start is int) || (int)start < 0 || (int)start >= Modes.Length)
                {
                    return null;
                }
                if ((int)start == 2 && delayed is int && (int)delayed == 1)
                {
                    return "AutomaticDelayed";
                }
                return Modes[(int)start];
            }
        }

        public static Dictionary<string, object> Describe(ServiceInfo service)
        {
            Dictionary<string, object> fact = new Dictionary<string, object>();
            fact["exists"] = service != null;
            fact["name"] = service == null ? null : service.Name;
            fact["display_name"] = service == null ? null : service.DisplayName;
            fact["status"] = service == null ? null : service.Status;
            fact["start_mode"] = service == null ? null : StartMode(service.Name);
            return fact;
        }

        public static object Fact(Args query)
        {
            return Describe(Core.Windows.FindService(query.Str("name")));
        }
    }
}
