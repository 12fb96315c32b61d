window.config = {
  "routerBasename": "/",
  "extensions": [],
  "modes": [],
  "showStudyList": true,
  "maxNumberOfWebWorkers": 2,
  "showWarningMessageForCrossOrigin": false,
  "showCPUFallbackMessage": false,
  "showLoadingIndicator": true,
  "investigationalUseDialog": {
    "option": "never"
  },
  "defaultDataSourceName": "sonobridge",
  "dataSources": [
    {
      "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
      "sourceName": "sonobridge",
      "configuration": {
        "friendlyName": "SonoBridge",
        "name": "sonobridge",
        "wadoUriRoot": "https://sonobridge.example.org/dicomweb",
        "qidoRoot": "https://sonobridge.example.org/dicomweb",
        "wadoRoot": "https://sonobridge.example.org/dicomweb",
        "qidoSupportsIncludeField": true,
        "imageRendering": "wadors",
        "thumbnailRendering": "wadors",
        "enableStudyLazyLoad": true,
        "supportsFuzzyMatching": false,
        "supportsWildcard": true,
        "omitQuotationForMultipartRequest": true,
        "bulkDataURI": {
          "enabled": true
        }
      }
    }
  ],
  "oidc": [
    {
      "authority": "https://sso.example.org/realms/sonobridge",
      "client_id": "ohif",
      "redirect_uri": "https://viewer.example.org/callback",
      "silent_redirect_uri": "https://viewer.example.org/silent-refresh.html",
      "post_logout_redirect_uri": "https://viewer.example.org/",
      "response_type": "code",
      "scope": "openid profile",
      "automaticSilentRenew": true,
      "revokeAccessTokenOnSignout": true
    }
  ]
};
